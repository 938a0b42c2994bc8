#!/usr/bin/env bash
# setup.sh: the engines' environment for tests/engines/run_engines.py, in DIR (default
# build/engines, ignored by git and kept between runs, so CI can cache it):
#   DIR/venv                  a Python 3.10 venv with scripts/requirements-engines.txt (pyciff
#                             0.1.1 has wheels for CPython 3.8-3.10 only)
#   DIR/anserini-fatjar.jar   Anserini's fat jar, taken out of the pyserini sdist on PyPI
#                             (pip download --no-deps: pyserini and its torch are not installed)
# Python 3.10 is looked for as $PYTHON310, python3.10 on PATH, pyenv's 3.10.*, then `uv python
# find 3.10`; when there is none, uv (from PyPI, into DIR/uv) installs one (`uv python install
# 3.10`, a python-build-standalone download). Idempotent: reinstalls only when the requirements change. Prints DIR's venv python.
# usage: tests/engines/setup.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build/engines}
pyserini=pyserini==1.2.0
mkdir -p "$dir"

find_python310() {
  local c
  for c in "${PYTHON310:-}" "$(command -v python3.10 || true)" \
           "$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.10.*/bin/python3.10 2>/dev/null | tail -1)" \
           "$(uv python find 3.10 2>/dev/null || true)"; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

stamp=$dir/venv/.requirements-engines.sha256
want=$( (sha256sum scripts/requirements-engines.txt; echo "$pyserini") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if ! py=$(find_python310); then
    echo "engines setup: no Python 3.10 found; installing one with uv" >&2
    python3 -m venv "$dir/uv" && "$dir/uv/bin/python" -m pip install -q uv &&
      "$dir/uv/bin/uv" python install 3.10 >&2 && py=$("$dir/uv/bin/uv" python find 3.10) ||
      { echo "engines setup: no Python 3.10 (pyciff 0.1.1 needs 3.8-3.10): set PYTHON310," \
          "or install one (pyenv install 3.10, uv python install 3.10)" >&2; exit 1; }
  fi
  echo "engines setup: $dir/venv with $($py --version)" >&2
  rm -rf "$dir/venv"
  "$py" -m venv "$dir/venv"
  "$dir/venv/bin/python" -m pip install -q --upgrade pip
  "$dir/venv/bin/python" -m pip install -q -r scripts/requirements-engines.txt
  rm -rf "$dir/download" "$dir/anserini-fatjar.jar"
  "$dir/venv/bin/python" -m pip download -q --no-deps --no-binary :all: "$pyserini" -d "$dir/download"
  "$dir/venv/bin/python" - "$dir" <<'PY'
import glob, os, sys, tarfile
d = sys.argv[1]
(sdist,) = glob.glob(os.path.join(d, "download", "pyserini-*.tar.gz"))
with tarfile.open(sdist) as t:
    (jar,) = [m for m in t.getmembers() if m.name.endswith("-fatjar.jar") and "/resources/jars/" in m.name]
    with t.extractfile(jar) as src, open(os.path.join(d, "anserini-fatjar.jar.tmp"), "wb") as out:
        while block := src.read(1 << 20):
            out.write(block)
os.rename(os.path.join(d, "anserini-fatjar.jar.tmp"), os.path.join(d, "anserini-fatjar.jar"))
print("engines setup: %s from %s" % (os.path.basename(jar.name), os.path.basename(sdist)), file=sys.stderr)
PY
  rm -rf "$dir/download"
  echo "$want" > "$stamp"
fi
echo "$dir/venv/bin/python"
