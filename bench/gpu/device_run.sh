#!/usr/bin/env bash
# The GPU run of docs/gpu-validation.md, on a machine with an NVIDIA GPU and its driver
# preinstalled, no network, no Ansible: run from the repository root as root, with the
# Python 3.12 wheels of ansible-core, ansible-runner and provision's dependencies in
# .cache/gpu-wheels (bench/gpu/README.md says how to fetch them). Writes to $OUT.
#
#   1. a venv from the wheels (no index), provision installed from the tree;
#   2. provision up --only gpu, twice: the second run must report changed=0;
#   3. provision up --only validate;
#   4. proof that nothing under /etc, /usr/local or /var/lib/dpkg changed.
set -uo pipefail
OUT=${OUT:-/tmp/provision-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device.log") 2>&1
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
INV=bench/gpu/h100-local.yml
V=/tmp/provision-venv
step() { printf '\n==> %s\n' "$*"; }

step "machine"
date -u; uname -a; grep PRETTY_NAME /etc/os-release; nproc
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
cat /proc/driver/nvidia/version 2>/dev/null | head -1
echo "python3: $(command -v python3) $(python3 --version 2>&1)"
for t in lspci modinfo mokutil dkms docker nvidia-ctk nvcc systemctl apt-get dpkg; do
  printf '%-12s %s\n' "$t" "$(command -v $t || ls /usr/local/cuda/bin/$t 2>/dev/null || echo missing)"
done
echo "pid 1: $(cat /proc/1/comm)"

step "venv from the carried wheels"
t0=$(date +%s)
python3 -m venv "$V" 2>/dev/null || { rm -rf "$V"; python3 -m venv --without-pip "$V"; }
if [ -x "$V/bin/pip" ]; then PIP=("$V/bin/pip"); else PIP=(python3 -m pip --python "$V/bin/python"); fi
"${PIP[@]}" install -q --no-index --no-deps .cache/gpu-wheels/*.whl || exit 1
"${PIP[@]}" install -q --no-index --no-deps --no-build-isolation -e . || exit 1
export PATH="$V/bin:$PATH"
"$V/bin/ansible-playbook" --version | head -2
"$V/bin/python" -c 'import provision.runner as r; print("provision", r.ROOT)'
echo "venv ready in $(( $(date +%s) - t0 )) s"

step "inventory ($INV)"
cat "$INV"
provision check "$INV" || exit 1

step "gpu_facts module, run directly"
echo '{"ANSIBLE_MODULE_ARGS": {}}' > /tmp/gpu-facts-args.json
"$V/bin/python" roles/gpu_facts/library/gpu_facts.py /tmp/gpu-facts-args.json | "$V/bin/python" -m json.tool > "$OUT/gpu-facts.json"
cat "$OUT/gpu-facts.json"

step "gpu_cuda_check module (the validate stage's CUDA computation), run directly"
echo '{"ANSIBLE_MODULE_ARGS": {}}' > /tmp/cuda-check-args.json
"$V/bin/python" roles/validate/library/gpu_cuda_check.py /tmp/cuda-check-args.json | "$V/bin/python" -m json.tool > "$OUT/cuda-check.json"
cat "$OUT/cuda-check.json"

touch /tmp/provision-marker; sleep 1
run() {  # run NAME STAGE [EXTRA FLAGS...]
  local name=$1 stage=$2; shift 2
  step "provision up $INV --only $stage --json $*  ($name)"
  local t0; t0=$(date +%s%N)
  local log="$OUT/ansible-$name.log" json="$OUT/$name.json"
  # $OUT returns at most 8 files: these two stay in /tmp, summarised in device.log
  case $name in gpu-run2) log=/tmp/ansible-$name.log ;; gpu-check) log=/tmp/ansible-$name.log json=/tmp/$name.json ;; esac
  ANSIBLE_LOG_PATH="$log" provision up "$INV" --only "$stage" --json "$@" > "$json"
  local rc=$?
  echo "rc=$rc wall=$(( ($(date +%s%N) - t0) / 1000000 )) ms"
  "$V/bin/python" - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("ok:", r["ok"], "| recap:", json.dumps(r["hosts"]), "| stages:", json.dumps(r["stages"]))
for f in r["failures"]:
    print("FAILURE:", f)
for w in r["warnings"]:
    print("WARNING:", w)
PY
  grep -E "msg: '(nvidia_driver|cuda|nvidia_container_toolkit|ok|no_gpu)|changed: \[|PLAY RECAP|localhost +:" "$log" | sed 's/^.*INFO| //' | head -20
}
run gpu-run1 gpu
run gpu-run2 gpu
run gpu-check gpu --check
run validate validate
step "validation summary (from the validate log)"
sed -n '/validate_gpu_summary/,/PLAY RECAP/p' "$OUT/ansible-validate.log" | sed 's/^.*INFO| //' | head -40

step "files changed under /etc, /usr/local, /var/lib/dpkg, /lib/modules since the first run"
find /etc /usr/local /var/lib/dpkg /lib/modules -xdev -newer /tmp/provision-marker -not -path '/etc/ld.so.cache' 2>/dev/null | head -50
echo "(end of list)"
dpkg --get-selections 2>/dev/null | grep -iE 'nvidia|cuda' | head -20 || true
sleep 1  # let tee flush device.log
