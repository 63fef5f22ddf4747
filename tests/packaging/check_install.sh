#!/usr/bin/env bash
# `make install`'s rules (cmake --install), staged with DESTDIR into a temporary folder: the binary,
# the generated man page and completions and the docs land under the prefix, and the installed
# binary runs. Nothing is written outside the temporary folder.
# usage: check_install.sh BUILD_DIR
set -uo pipefail
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
err() { echo "FAIL: $*" >&2; fail=1; }
for f in mlaudit.1.gz mlaudit.bash _mlaudit; do
  [[ -s $build/generated/$f ]] || { echo "FAIL: $build/generated/$f missing (build the mlaudit_docs target)"; exit 1; }
done
DESTDIR=$tmp/stage cmake --install "$build" --prefix /opt/mlaudit > "$tmp/log" 2>&1 || { cat "$tmp/log"; err "cmake --install failed"; }
root=$tmp/stage/opt/mlaudit
for f in bin/mlaudit share/man/man1/mlaudit.1.gz share/bash-completion/completions/mlaudit \
         share/zsh/vendor-completions/_mlaudit share/doc/mlaudit/README.md share/doc/mlaudit/docs/install.md; do
  [[ -f $root/$f ]] || err "not installed: $f"
done
[[ -x $root/bin/mlaudit ]] || err "bin/mlaudit is not executable"
"$root/bin/mlaudit" --version | head -1 | grep -q '^mlaudit ' || err "the installed mlaudit --version"
cmp -s <(zcat "$root/share/man/man1/mlaudit.1.gz") <("$root/bin/mlaudit" --help-man) || err "the installed man page differs from --help-man"
cmp -s "$root/share/bash-completion/completions/mlaudit" <("$root/bin/mlaudit" completion bash) || err "the installed bash completion differs"
[[ $(find "$tmp/stage" -type f | wc -l) -gt 10 ]] || err "too few files installed"
[[ $fail == 0 ]] && echo "OK: $(find "$tmp/stage" -type f | wc -l) files installed under DESTDIR/opt/mlaudit"
exit $fail
