#!/usr/bin/env bash
# Checks the Debian package `make package` wrote, without installing it (no root, nothing on the
# machine changes): control fields and Depends (dpkg-deb --info), the files it ships
# (dpkg-deb --contents), then the extracted binary runs --version, info and a small audit, the man
# page renders and names every command, and the completions parse and register.
# usage: check_deb.sh PATH.deb VERSION BUILD_MLAUDIT SOURCE_DIR   (exit 77: skipped, no .deb)
set -uo pipefail
deb=$1 version=$2 exe=$3 src=$4
# MLAUDIT_REQUIRE_DEB=1 (.ci/run, after make package): a missing or stale package fails instead
skip() {
  if [[ -n ${MLAUDIT_REQUIRE_DEB:-} ]]; then echo "FAIL: $*"; exit 1; fi
  echo "SKIP: $*"
  exit 77
}
[[ -f $deb ]] || skip "no $deb (run 'make package' first)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
err() { echo "FAIL: $*" >&2; fail=1; }

# ---- control fields
field() { dpkg-deb --field "$deb" "$1"; }
[[ $(field Package) == mlaudit ]] || err "Package is '$(field Package)'"
[[ $(field Version) == "$version" ]] || err "Version is '$(field Version)', want $version"
[[ $(field Architecture) == amd64 ]] || err "Architecture is '$(field Architecture)'"
[[ -n $(field Maintainer) ]] || err "no Maintainer"
[[ -n $(field Section) ]] || err "no Section"
[[ -n $(field Description) ]] || err "no Description"
depends=$(field Depends)
echo "Depends: $depends"
# The runtime libraries the issue names (Debian 12's package names), and OpenMP
for lib in libdnnl libz3 libprotobuf libyaml-cpp libfmt libboost-program-options libpng libjpeg libgomp libstdc++6 libc6; do
  [[ $depends == *"$lib"* ]] || err "Depends lacks $lib"
done
[[ $depends == *cuda* || $depends == *cublas* ]] && err "Depends names CUDA libraries"

# ---- contents
dpkg-deb --contents "$deb" | awk '{print $NF}' > "$tmp/contents"
for f in ./usr/bin/mlaudit ./usr/share/man/man1/mlaudit.1.gz ./usr/share/bash-completion/completions/mlaudit \
         ./usr/share/zsh/vendor-completions/_mlaudit ./usr/share/doc/mlaudit/README.md \
         ./usr/share/doc/mlaudit/docs/install.md ./usr/share/doc/mlaudit/docs/audit.md; do
  grep -qx -- "$f" "$tmp/contents" || err "the package lacks $f"
done
grep -q '^./usr/local' "$tmp/contents" && err "files under /usr/local"

# ---- the extracted (or installed) package works
# MLAUDIT_DEB_ROOT=/ (scripts/check_installed_deb.sh, after apt install): check the installed
# files instead of an extracted copy
root=${MLAUDIT_DEB_ROOT:-$tmp/root}
if [[ -z ${MLAUDIT_DEB_ROOT:-} ]]; then dpkg-deb -x "$deb" "$root" || { err "dpkg-deb -x failed"; exit 1; }; fi
bin=${root%/}/usr/bin/mlaudit
ldd "$bin" | grep -q "not found" && err "unresolved libraries: $(ldd "$bin" | grep 'not found')"
ldd "$bin" | grep -Eq "/usr/local|cuda" && err "links outside Debian's libraries: $(ldd "$bin" | grep -E '/usr/local|cuda')"
"$bin" --version > "$tmp/version" || err "mlaudit --version exited $?"
cat "$tmp/version"
head -1 "$tmp/version" | grep -q "^mlaudit $version " || err "--version does not start with 'mlaudit $version'"
# A package from another commit than this build is stale: skip rather than test old files.
pkg_commit=$(head -1 "$tmp/version" | sed -E 's/.*\((.*)\)/\1/')
build_commit=$("$exe" --version | head -1 | sed -E 's/.*\((.*)\)/\1/')
[[ $pkg_commit == "$build_commit" ]] || skip "$deb is from commit $pkg_commit, this build is $build_commit (run 'make package')"
"$bin" --version --json > "$tmp/version.json" || err "--version --json exited $?"
grep -q '"schema": "mlaudit.version/1"' "$tmp/version.json" || err "--version --json: no schema"
tr -d ' \n' < "$tmp/version.json" | grep -q '"cuda":{"architectures":\[\],"compiled":false' || err "--version --json: the package has CUDA"
"$bin" info -m "$src/models/credit_mlp.onnx" > "$tmp/info" || err "mlaudit info exited $?"
grep -q "credit_mlp.onnx" "$tmp/info" || err "mlaudit info: $(cat "$tmp/info")"
# A small audit: performance and group fairness of the credit MLP on 2000 CSV rows, one gate.
cat > "$tmp/audit.yaml" <<YAML
version: 1
system: {name: package check, version: "1", owner: ci}
models: {credit: $src/models/credit_mlp.onnx}
datasets:
  credit: {csv: $src/datasets/credit/credit_test.csv, label: approved, protected: [sex], features: $src/datasets/credit/features.txt}
sections:
  performance: [{model: credit, data: credit, bootstrap: 100}]
  fairness: [{model: credit, data: credit, protected: [sex], bootstrap: 100}]
gates:
  - {check: accuracy() >= 0.5, model: credit, name: credit accuracy}
YAML
"$bin" audit --config "$tmp/audit.yaml" --out "$tmp/audit" --no-pdf --quiet; rc=$?
[[ $rc == 0 ]] || err "the small audit exited $rc"
for f in report.json report.html report.md junit.xml; do [[ -s $tmp/audit/$f ]] || err "the audit wrote no $f"; done

# ---- man page: renders, names every command of this binary
man_gz=${root%/}/usr/share/man/man1/mlaudit.1.gz
if command -v groff > /dev/null; then
  zcat "$man_gz" | groff -man -Tutf8 2> "$tmp/groff.err" | sed -e 's/.\x08//g; s/\xe2\x80\x90/-/g; s/\xe2\x88\x92/-/g' > "$tmp/man.txt"
  [[ -s $tmp/man.txt ]] || err "the man page renders empty"
elif command -v man > /dev/null; then
  MANWIDTH=80 man -l "$man_gz" > "$tmp/man.txt" 2> /dev/null || err "man -l failed"
else
  zcat "$man_gz" | sed 's/\\-/-/g' > "$tmp/man.txt"
fi
for cmd in $(sed -n 's/^commands: *//p' "$tmp/version"); do
  grep -q "mlaudit $cmd" "$tmp/man.txt" || err "the man page does not name 'mlaudit $cmd'"
done

# ---- completions
bash_comp=${root%/}/usr/share/bash-completion/completions/mlaudit
bash -n "$bash_comp" || err "bash -n $bash_comp"
bash -c "source '$bash_comp' && complete -p mlaudit" | grep -q -- "-F _mlaudit mlaudit" || err "complete -p mlaudit after sourcing"
zsh_comp=${root%/}/usr/share/zsh/vendor-completions/_mlaudit
head -1 "$zsh_comp" | grep -qx '#compdef mlaudit' || err "_mlaudit lacks #compdef"
if command -v zsh > /dev/null; then zsh -n "$zsh_comp" || err "zsh -n $zsh_comp"; else echo "(no zsh here: _mlaudit not parsed)"; fi

(( $(sed -n 's/^commands: *//p' "$tmp/version" | wc -w) >= 5 )) || err "--version lists too few commands"
[[ $fail == 0 ]] && echo "OK: $deb"
exit $fail
