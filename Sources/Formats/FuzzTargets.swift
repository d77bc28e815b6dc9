import TensorCore

/// Entry points for the libFuzzer harness in `Sources/FuzzFormats` (see its README): each
/// parses untrusted bytes and swallows `FormatError`, so that only a crash, trap, hang or
/// runaway allocation is a finding. Not for other uses.
public enum _FuzzTargets {
    /// The unpickler alone, with torch's persistent ids accepted as storages.
    public static func pickle(_ data: UnsafeRawBufferPointer) {
        var u = Unpickler(data, source: "fuzz")
        guard let v = try? u.load(persistentLoad: Unpickler.torchPersistentLoad) else { return }
        var c = TreeConverter(source: "fuzz", budget: max(4 * data.count, 1 << 16)) { ref in
            // Storages are not in the input: stand in zeros, bounded like a real file.
            guard ref.count <= 1 << 20 else {
                throw FormatError(.tooLarge, file: "fuzz", "storage too large")
            }
            return TensorStorage(count: ref.count, repeating: 0)
        }
        _ = try? c.convert(v, depth: 0)
    }

    /// The zip reader: the directory, then every entry's contents.
    public static func zip(_ data: UnsafeRawBufferPointer) {
        guard let z = try? ZipArchive(ByteBuffer(copying: data, name: "fuzz")) else { return }
        for e in z.entries.prefix(64) { _ = try? z.contents(of: e) }
    }

    /// The `.npy` reader.
    public static func npy(_ data: UnsafeRawBufferPointer) {
        _ = try? NumPy.parse(ByteSlice(ByteBuffer(copying: data, name: "fuzz")))
    }

    /// Whole checkpoints (zip or legacy), then their state dict.
    public static func checkpoint(_ data: UnsafeRawBufferPointer) {
        _ = try? TorchCheckpoint(ByteBuffer(copying: data, name: "fuzz")).stateDict()
    }

    /// The safetensors header and tensors.
    public static func safetensors(_ data: UnsafeRawBufferPointer) {
        _ = try? SafetensorsFile(ByteBuffer(copying: data, name: "fuzz")).stateDict()
    }
}
