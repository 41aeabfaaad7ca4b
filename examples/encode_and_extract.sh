#!/usr/bin/env bash
# Wrap the sample PDF as DICOM, take it back out, and prove the bytes are unchanged.
# Run from the repository root after installing: bash examples/encode_and_extract.sh
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pdf2dcm encode examples/HelloWorld2.pdf -o "$work/hello.dcm" \
  --tag PatientName=Benjamino --tag PatientID=EX-0001 --tag PatientSex=O
pdf2dcm extract "$work/hello.dcm" -o "$work/hello.pdf"
cmp examples/HelloWorld2.pdf "$work/hello.pdf"
echo "round trip identical: $(sha256sum < "$work/hello.pdf" | cut -c1-16)..."
