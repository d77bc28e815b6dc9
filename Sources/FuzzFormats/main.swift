// libFuzzer harness for the Formats readers. Not a SwiftPM target: build it with
// Sources/FuzzFormats/build.sh, which compiles the libraries with coverage and links this
// file with -sanitize=fuzzer. Choose the reader with ISFGAN_FUZZ_TARGET (pickle, zip, npy,
// checkpoint, safetensors; default pickle).
import Formats
import Foundation

let target = ProcessInfo.processInfo.environment["ISFGAN_FUZZ_TARGET"] ?? "pickle"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    switch target {
    case "zip": _FuzzTargets.zip(bytes)
    case "npy": _FuzzTargets.npy(bytes)
    case "checkpoint": _FuzzTargets.checkpoint(bytes)
    case "safetensors": _FuzzTargets.safetensors(bytes)
    default: _FuzzTargets.pickle(bytes)
    }
    return 0
}
