#!/usr/bin/env bash
# Copies captured sysfs/procfs trees into tests/fixtures/, restoring symlinks.
#
# The captured trees were stored with every symlink flattened into a regular file
# that holds the link's relative target (e.g. `driver` containing
# `../../../../bus/dax/drivers/kmem`). daxplug reads links with readlink(2), as on
# a real sysfs, so this turns such files back into symlinks. No sysfs attribute
# daxplug reads starts with "../", so the rule is unambiguous for these trees.
#
# Usage: tools/import-fixtures.sh SRC_DIR   (SRC_DIR holds hmem/ and e820/)
set -euo pipefail
src=${1:?usage: tools/import-fixtures.sh SRC_DIR}
dst=$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures
rm -rf "$dst"/hmem "$dst"/e820
cp -r "$src"/hmem "$src"/e820 "$dst"/
chmod -R u+w "$dst"
find "$dst" -type f -size -300c -print0 | while IFS= read -r -d '' f; do
  target=$(head -c 300 "$f")
  if [[ $target == ../* && $target != *$'\n'* ]]; then
    rm "$f" && ln -s "$target" "$f"
  fi
done
echo "imported into $dst: $(find "$dst" -type l | wc -l) symlinks restored"
