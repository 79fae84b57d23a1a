#!/usr/bin/env bash
# Extracts ../shared/data/cifar10-jpeg.tar.gz once into the build tree (the CTest fixture of
# the CIFAR-10 tests): DEST/cifar10/{train,test}/<class>/NNNN.jpg. Extraction goes to a
# temporary folder that is renamed last, so a killed run never leaves half a data set.
set -euo pipefail
src=$1
dest=$2
tarball="$src/../shared/data/cifar10-jpeg.tar.gz"
if [ -f "$dest/cifar10/.complete" ]; then
  exit 0
fi
if [ ! -f "$tarball" ]; then
  echo "error: $tarball not found; the CIFAR-10 tests read it from ../shared/data (see README)"
  exit 1
fi
mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar xzf "$tarball" -C "$tmp"
count=$(find "$tmp/cifar10" -name '*.jpg' | wc -l)
if [ "$count" -ne 60000 ]; then
  echo "error: $tarball holds $count JPEGs, expected 60000; the file is damaged"
  exit 1
fi
touch "$tmp/cifar10/.complete"
rm -rf "$dest/cifar10"
mv "$tmp/cifar10" "$dest/cifar10"
echo "extracted 60000 CIFAR-10 images to $dest/cifar10"
