#!/bin/sh
# Builds .build-fuzz/fuzz-formats: the Formats readers under libFuzzer with coverage.
# Usage: Sources/FuzzFormats/build.sh   (from the package root)
set -e
S=.build-fuzz
swift build -c release --scratch-path $S --target Formats \
    -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library -Xcc -fsanitize=fuzzer-no-link
R=$S/release
objs=$(find $R/TensorCore.build $R/Layers.build $R/Formats.build $R/CJPEGShim.build \
    -name '*.o' | tr '\n' ' ')

swiftc -O -sanitize=fuzzer -parse-as-library -I $R/Modules -I Sources/CJPEGShim/include \
    -Xcc -fmodule-map-file=Sources/CPNG/module.modulemap \
    -Xcc -fmodule-map-file=Sources/CZlib/module.modulemap \
    -Xcc -fmodule-map-file=Sources/CDNNL/module.modulemap \
    -Xcc -fmodule-map-file=$R/CJPEGShim.build/module.modulemap \
    Sources/FuzzFormats/main.swift $objs -lpng16 -lz -ljpeg -ldnnl -o $S/fuzz-formats
echo "built $S/fuzz-formats"
