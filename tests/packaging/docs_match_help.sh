#!/usr/bin/env bash
# The man page and the completions are generated from the commands' option tables; this checks
# them against what `mlaudit CMD --help` prints (Boost's own formatting of the same tables), so a
# command or option added anywhere shows up in both or fails here. Then the bash completion is
# exercised the way bash calls it.
# usage: docs_match_help.sh path/to/mlaudit
set -uo pipefail
exe=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
err() { echo "FAIL: $*" >&2; fail=1; }

"$exe" --help-man > "$tmp/mlaudit.1" || err "--help-man exited $?"
"$exe" completion bash > "$tmp/mlaudit.bash" || err "completion bash exited $?"
"$exe" completion zsh > "$tmp/_mlaudit" || err "completion zsh exited $?"
"$exe" completion fish > /dev/null 2>&1; [[ $? == 2 ]] || err "completion fish should be a usage error (2)"

# The commands `mlaudit --help` lists.
mapfile -t commands < <("$exe" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}')
(( ${#commands[@]} >= 5 )) || err "found only ${#commands[@]} commands in mlaudit --help"

# Rendered man page (groff, as man -l does); its text must name every command and option.
if command -v groff > /dev/null; then
  groff -man -Tutf8 -ww "$tmp/mlaudit.1" > "$tmp/man.txt" 2> "$tmp/groff.err" || err "groff failed"
  grep -v "can't break line" "$tmp/groff.err" | grep . && err "groff warnings (above)"
  # groff -Tutf8 writes U+2010 for hyphens and U+2212 for \-: back to ASCII before comparing
  sed -e 's/\xe2\x80\x90/-/g; s/\xe2\x88\x92/-/g' -e 's/.\x08//g' "$tmp/man.txt" > "$tmp/man.ascii"
else
  sed -e 's/\\-/-/g' "$tmp/mlaudit.1" > "$tmp/man.ascii"
fi
for s in NAME SYNOPSIS DESCRIPTION "GLOBAL OPTIONS" COMMANDS "EXIT STATUS" FILES "SEE ALSO"; do
  grep -q "^$s" "$tmp/man.ascii" || err "man page: no $s section"
done
for code in 0 1 2 3 130; do grep -Eq "^ +$code( |\$)" "$tmp/man.ascii" || err "man page: exit status $code not described"; done

# The global options `mlaudit --help` names (main.cpp parses them by hand) are in GLOBAL OPTIONS.
sed -n '/^GLOBAL OPTIONS/,/^COMMANDS/p' "$tmp/man.ascii" > "$tmp/globals"
for name in $("$exe" --help | sed '/^Commands:/,$d' | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
  grep -q -- "$name" "$tmp/globals" || err "man page: global option $name missing"
done

bash -n "$tmp/mlaudit.bash" || err "bash -n: the completion script does not parse"
if command -v zsh > /dev/null; then zsh -n "$tmp/_mlaudit" || err "zsh -n: _mlaudit does not parse"; fi

options_checked=0
for cmd in "${commands[@]}"; do
  upper=$(echo "$cmd" | tr a-z A-Z)
  # this command's section of the man page
  sed -n "/^MLAUDIT $upper\$/,/^[A-Z][A-Z ]*\$/p" "$tmp/man.ascii" | sed '$d' > "$tmp/section"
  [[ -s $tmp/section ]] || { err "man page: no section MLAUDIT $upper"; continue; }
  grep -q "mlaudit $cmd" "$tmp/section" || err "man page: section $upper has no usage 'mlaudit $cmd'"
  # this command's option list in the bash completion
  opts=$(sed -n "/^    $cmd)\$/,/^      opts=/p" "$tmp/mlaudit.bash" | grep '^      opts=')
  [[ -n $opts ]] || err "bash completion: no entry for $cmd"
  zsh_block=$(sed -n "/^        $cmd)\$/,/&& ret=0 ;;/p" "$tmp/_mlaudit")
  [[ -n $zsh_block ]] || err "zsh completion: no entry for $cmd"
  # every option --help prints: "  -m [ --model ] arg ..." or "  --attack arg (=pgd) ..."
  mapfile -t names < <("$exe" "$cmd" --help | grep -v 'is the old spelling of' | grep -oE '^  (-[[:alnum:]] \[ )?--[[:alnum:]][[:alnum:]-]*' | sed -E 's/.*--//')
  (( ${#names[@]} > 0 )) || err "mlaudit $cmd --help lists no options"
  for name in "${names[@]}"; do
    options_checked=$((options_checked + 1))
    grep -Eq -- "--$name( |,|\.|$)" "$tmp/section" || err "man page: $cmd --$name missing"
    [[ " ${opts#*\"} " == *" --$name "* || " ${opts#*\"} " == *" --$name\" "* ]] || err "bash completion: $cmd --$name missing"
    grep -Eq -- "--$name([]=[}]|,)" <<< "$zsh_block" || err "zsh completion: $cmd --$name missing"
  done
done
echo "checked ${#commands[@]} commands, $options_checked options"

# The bash completion as bash runs it: source, then call _mlaudit on COMP_WORDS.
cd "$tmp"
touch model.onnx data.npy
comp() {  # comp WORD... : COMPREPLY for the last word
  bash -c 'source ./mlaudit.bash; complete -p mlaudit >/dev/null || exit 9
           COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _mlaudit; printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
}
bash -c 'source ./mlaudit.bash; complete -p mlaudit' | grep -q -- '-F _mlaudit mlaudit' || err "complete -p mlaudit after sourcing"
[[ $(comp mlaudit att) == attack ]] || err "completing 'mlaudit att' gave '$(comp mlaudit att)'"
comp mlaudit "" | grep -qx completion || err "'mlaudit <TAB>' does not offer completion"
comp mlaudit attack --mo | grep -qx -- --model || err "'mlaudit attack --mo' does not offer --model"
[[ $(comp mlaudit attack --model mod) == model.onnx ]] || err "'attack --model mod' gave '$(comp mlaudit attack --model mod)'"
[[ $(comp mlaudit --threads 4 attack --norm li) == linf ]] || err "'attack --norm li' gave '$(comp mlaudit --threads 4 attack --norm li)'"
[[ $(comp mlaudit attack --device c) == "cuda" || $(comp mlaudit attack --device c) == $'cpu\ncuda' ]] || err "'attack --device c' gave '$(comp mlaudit attack --device c)'"
[[ $(comp mlaudit --device cu) == cuda ]] || err "'mlaudit --device cu' gave '$(comp mlaudit --device cu)'"
[[ $(comp mlaudit attack --model = da) == data.npy ]] || err "'attack --model=da' gave '$(comp mlaudit attack --model = da)'"
[[ $(comp mlaudit completion z) == zsh ]] || err "'mlaudit completion z' gave '$(comp mlaudit completion z)'"

exit $fail
