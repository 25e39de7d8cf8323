#!/usr/bin/env bash
# The notebooks in notebooks/*.ipynb, on the Deno Jupyter kernel (npm devDependency `deno`).
#
#   scripts/notebooks.sh test [NAME...]     execute every notebook (or the named ones) headlessly into a
#                                           temporary folder; fails when a cell errors  (npm run test:notebooks)
#   scripts/notebooks.sh update [NAME...]   the same, writing the outputs back into notebooks/ (commit them)
#   scripts/notebooks.sh open               jupyter notebook / lab on notebooks/ (npm run notebooks)
#
# Jupyter comes from Debian: apt-get install -y jupyter-nbconvert python3-nbclient python3-ipykernel
# (+ jupyter-notebook to open them). The kernel spec is written into node_modules/.cache/diffguide-jupyter
# (JUPYTER_PATH), so nothing outside the repo is touched; Jupyter's runtime files go there too.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
mode="${1:-test}"
[ $# -gt 0 ] && shift

# the binary: linked into node_modules/deno by its postinstall, else straight from the platform package
deno="$root/node_modules/deno/deno"
if [ ! -x "$deno" ]; then
  for d in "$root"/node_modules/@deno/*/deno; do [ -x "$d" ] && "$d" --version >/dev/null 2>&1 && deno="$d" && break; done
fi
if [ -z "$deno" ] || [ ! -x "$deno" ]; then
  echo "notebooks: no Deno binary in node_modules (the devDependency 'deno'); run: npm install" >&2
  exit 1
fi
jupyter=/usr/bin/jupyter
[ -x "$jupyter" ] || jupyter="$(command -v jupyter || true)"
if [ -z "$jupyter" ] || ! "$jupyter" nbconvert --version >/dev/null 2>&1; then
  echo "notebooks: Jupyter's nbconvert is not installed; install it with: apt-get install -y jupyter-nbconvert python3-nbclient python3-ipykernel" >&2
  exit 1
fi

# dist/ is what `import ... from 'diffguide'` loads (package.json exports); rebuild it when a source is newer
newest_src="$(find lib nets samplers guidance -name '*.ts' -newer dist/lib/index.js -print -quit 2>/dev/null || echo missing)"
if [ ! -f dist/lib/index.js ] || [ -n "$newest_src" ]; then
  echo "notebooks: dist/ is older than the sources (${newest_src:-no dist}); rebuilding (npm run build)" >&2
  npm run --silent build
fi

cache="$root/node_modules/.cache/diffguide-jupyter"
mkdir -p "$cache/kernels/deno" "$cache/runtime" "$cache/config" "$cache/ipython"
cat > "$cache/kernels/deno/kernel.json" <<EOF
{
  "argv": ["$deno", "jupyter", "--kernel", "--conn", "{connection_file}"],
  "display_name": "Deno (diffguide)",
  "language": "typescript"
}
EOF
export JUPYTER_PATH="$cache" JUPYTER_DATA_DIR="$cache" JUPYTER_RUNTIME_DIR="$cache/runtime" JUPYTER_CONFIG_DIR="$cache/config" IPYTHONDIR="$cache/ipython"
export NO_COLOR=1 DENO_NO_UPDATE_CHECK=1 DENO_DIR="$cache/deno"

if [ "$mode" = open ]; then
  for app in lab notebook; do
    if "$jupyter" "$app" --version >/dev/null 2>&1; then
      exec "$jupyter" "$app" --notebook-dir="$root/notebooks" "$@"
    fi
  done
  echo "notebooks: neither jupyter lab nor jupyter notebook is installed; install one with: apt-get install -y jupyter-notebook" >&2
  echo "(the kernel spec is in $cache: JUPYTER_PATH=$cache jupyter notebook notebooks/ uses it)" >&2
  exit 1
fi
if [ "$mode" != test ] && [ "$mode" != update ]; then
  echo "usage: scripts/notebooks.sh test|update|open [NAME...]" >&2
  exit 2
fi

if [ $# -gt 0 ]; then
  books=()
  for n in "$@"; do books+=("notebooks/${n%.ipynb}.ipynb"); done
else
  books=(notebooks/*.ipynb)
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
for nb in "${books[@]}"; do
  [ -f "$nb" ] || { echo "notebooks: $nb does not exist" >&2; status=1; continue; }
  start=$(date +%s)
  if [ "$mode" = update ]; then dest=(--inplace); else dest=(--output-dir "$out"); fi
  # nbconvert exits non-zero (CellExecutionError, naming the cell) when a cell raises
  if "$jupyter" nbconvert --to notebook --execute "${dest[@]}" \
      --ExecutePreprocessor.kernel_name=deno --ExecutePreprocessor.timeout=600 \
      --ExecutePreprocessor.startup_timeout=120 "$nb" > "$out/log" 2>&1; then
    echo "ok    $nb ($(( $(date +%s) - start )) s)"
  else
    echo "FAIL  $nb ($(( $(date +%s) - start )) s)"
    sed -e 's/\x1b\[[0-9;]*m//g' "$out/log" | tail -40
    status=1
  fi
done
exit $status
