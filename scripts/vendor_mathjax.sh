#!/usr/bin/env bash
# Vendor MathJax 3 so the built book typesets math offline (no CDN).
#
# npm installs mathjax@3 into .cache/mathjax (git-ignored); what the book needs is copied into
# _vendor/mathjax/ (git-ignored), which _config.yml lists in html_extra_path and points
# mathjax_path at: the combined component es5/tex-mml-chtml.js, its web fonts, the TeX
# extensions it autoloads on demand (e.g. \boldsymbol loads input/tex/extensions/boldsymbol.js)
# and the menu. MathJax 3, not 4: v4 fetches its fonts from a CDN.
# Idempotent: does nothing when the vendored copy is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${MATHJAX_VERSION:-3.2.2}"
CACHE="$ROOT/.cache/mathjax"
DEST="$ROOT/_vendor/mathjax"
FONTS="output/chtml/fonts/woff-v2"
EXTENSIONS="input/tex/extensions"

if [[ -s "$DEST/tex-mml-chtml.js" && -s "$DEST/$EXTENSIONS/boldsymbol.js" && -n "$(ls -A "$DEST/$FONTS" 2>/dev/null)" ]]; then
    echo "vendor_mathjax: $DEST already present"
    exit 0
fi

SRC="$CACHE/node_modules/mathjax/es5"
if [[ ! -s "$SRC/tex-mml-chtml.js" ]]; then
    command -v npm >/dev/null || { echo "vendor_mathjax: npm not found (apt-get install -y npm)" >&2; exit 1; }
    mkdir -p "$CACHE"
    echo "vendor_mathjax: npm install mathjax@$VERSION into $CACHE"
    npm install --prefix "$CACHE" --no-save --no-audit --no-fund --silent "mathjax@$VERSION"
fi

rm -rf "$DEST"
mkdir -p "$DEST/$FONTS" "$DEST/$EXTENSIONS"
cp "$SRC/tex-mml-chtml.js" "$DEST/"
cp "$SRC/$FONTS/"*.woff "$DEST/$FONTS/"
cp -r "$SRC/$EXTENSIONS/." "$DEST/$EXTENSIONS/"
cp -r "$SRC/ui" "$DEST/"
echo "vendor_mathjax: copied MathJax $(node -p "require('$CACHE/node_modules/mathjax/package.json').version" 2>/dev/null || echo "$VERSION") to $DEST"
