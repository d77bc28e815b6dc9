import Foundation

/// A reference-counted, 64-byte aligned block of `Float`s that tensors view.
///
/// Storage is shared between a tensor and its views (reshape, transpose, slice, expand);
/// kernels never write into a storage that another tensor may still read, except through
/// the explicitly in-place parameter updates of `Layers`.
public final class TensorStorage: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// Uninitialised storage for `count` floats.
    public init(count: Int) {
        precondition(count >= 0, "storage size must not be negative, got \(count)")
        self.count = count
        var raw: UnsafeMutableRawPointer?
        // 64-byte alignment lets oneDNN and the vector loops use aligned loads.
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes for a tensor")
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        MemoryStats.allocated(bytes: bytes)
    }

    /// Storage filled with `value`.
    public convenience init(count: Int, repeating value: Float) {
        self.init(count: count)
        pointer.initialize(repeating: value, count: count)
    }

    deinit {
        MemoryStats.freed(bytes: max(count, 1) * MemoryLayout<Float>.stride)
        free(pointer)
    }
}

/// Live and peak bytes held by tensor storages, for benchmarks and training stats.
public enum MemoryStats {
    nonisolated(unsafe) private static var live = 0
    nonisolated(unsafe) private static var peakBytes = 0
    private static let lock = NSLock()

    static func allocated(bytes: Int) {
        lock.lock()
        live += bytes
        if live > peakBytes { peakBytes = live }
        lock.unlock()
    }

    static func freed(bytes: Int) {
        lock.lock()
        live -= bytes
        lock.unlock()
    }

    /// Bytes held by tensors right now.
    public static var liveBytes: Int {
        lock.lock(); defer { lock.unlock() }
        return live
    }

    /// Largest `liveBytes` seen since the last `resetPeak()`.
    public static var peak: Int {
        lock.lock(); defer { lock.unlock() }
        return peakBytes
    }

    public static func resetPeak() {
        lock.lock()
        peakBytes = live
        lock.unlock()
    }
}
