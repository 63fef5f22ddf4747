# Shared by the VNN-COMP scripts: the interface version, the mlaudit to run, argument checks.
# mlaudit: $MLAUDIT, else the repository's build/mlaudit, else the one on PATH.
VNNCOMP_VERSION=v1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -n ${MLAUDIT:-} ]]; then mlaudit=$MLAUDIT
elif [[ -x $repo/build/mlaudit ]]; then mlaudit=$repo/build/mlaudit
else mlaudit=$(command -v mlaudit || true); fi
die() { echo "$(basename "$0"): $*" >&2; exit 1; }
check_version() { [[ $1 == "$VNNCOMP_VERSION" ]] || die "expected interface version $VNNCOMP_VERSION, got '$1'"; }
# A benchmark may ship gzipped files; the harness names them without .gz.
unzip_if_needed() {
  local f=$1
  if [[ ! -f $f && -f $f.gz ]]; then gunzip -k "$f.gz" || die "cannot gunzip $f.gz"; fi
  [[ -f $f ]] || die "no such file: $f"
}
# run_instance.sh records the mlaudit it starts here; prepare_instance.sh stops only that one
# (never every mlaudit on the machine: other users' and other jobs' runs are left alone).
state_dir=${TMPDIR:-/tmp}/mlaudit-vnncomp-$(id -u)
pid_file=$state_dir/run.pid
