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
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = BlockCache.allocate(bytes: bytes)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        MemoryStats.allocated(bytes: bytes)
    }

    /// Storage filled with `value`.
    public convenience init(count: Int, repeating value: Float) {
        self.init(count: count)
        pointer.initialize(repeating: value, count: count)
    }

    deinit {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        MemoryStats.freed(bytes: bytes)
        BlockCache.release(UnsafeMutableRawPointer(pointer), bytes: bytes)
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

/// Keeps large freed blocks for reuse by the next storage of the same size.
///
/// Models allocate the same large shapes on every run; without reuse each allocation is a
/// fresh `mmap` whose pages the kernel must fault in and zero (about a tenth of a
/// generator run). Blocks of at least 1 MiB are cached by exact (page-rounded) size, up
/// to `limitBytes` in all (`ISFGAN_CACHE_MB`, default 512); beyond that they are freed.
public enum BlockCache {
    static let minimumBytes = 1 << 20
    nonisolated(unsafe) public static var limitBytes: Int = {
        if let s = ProcessInfo.processInfo.environment["ISFGAN_CACHE_MB"], let mb = Int(s), mb >= 0
        {
            return mb << 20
        }
        return 512 << 20
    }()
    nonisolated(unsafe) private static var blocks: [Int: [UnsafeMutableRawPointer]] = [:]
    nonisolated(unsafe) private static var cached = 0
    private static let lock = NSLock()

    /// Blocks from 2 MiB up are whole transparent huge pages: one fault per 2 MiB
    /// instead of per 4 KiB (the kernel's `madvise` mode honours `MADV_HUGEPAGE`).
    static let hugePage = 2 << 20

    static func rounded(_ bytes: Int) -> Int {
        bytes >= hugePage ? (bytes + hugePage - 1) & ~(hugePage - 1) : (bytes + 4095) & ~4095
    }

    static func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes >= minimumBytes {
            let size = rounded(bytes)
            lock.lock()
            if let p = blocks[size]?.popLast() {
                cached -= size
                lock.unlock()
                return p
            }
            lock.unlock()
            return alignedAllocate(size)
        }
        return alignedAllocate(bytes)
    }

    static func release(_ p: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= minimumBytes {
            let size = rounded(bytes)
            lock.lock()
            if cached + size <= limitBytes {
                blocks[size, default: []].append(p)
                cached += size
                lock.unlock()
                return
            }
            lock.unlock()
        }
        free(p)
    }

    /// Frees every cached block.
    public static func trim() {
        lock.lock()
        for (_, list) in blocks { for p in list { free(p) } }
        blocks = [:]
        cached = 0
        lock.unlock()
    }

    /// Bytes held in the cache now.
    public static var cachedBytes: Int {
        lock.lock(); defer { lock.unlock() }
        return cached
    }

    private static func alignedAllocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        // 64-byte alignment lets oneDNN and the vector loops use aligned loads; large
        // blocks are aligned to huge pages and asked to be backed by them.
        let alignment = bytes >= hugePage ? hugePage : 64
        guard posix_memalign(&raw, alignment, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes for a tensor")
        }
        if bytes >= hugePage {
            _ = madvise(raw, bytes, 14)  // MADV_HUGEPAGE; a refusal only costs speed
        }
        return raw
    }
}
