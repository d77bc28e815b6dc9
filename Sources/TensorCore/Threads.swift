import Dispatch
import Foundation

/// How many threads the project's kernels and oneDNN use.
///
/// Defaults to `ISFGAN_THREADS` when set, else the number of cores. Work is split into
/// pieces whose boundaries do not depend on the thread count wherever results could
/// depend on them, so elementwise results are bit-identical for any count.
public enum Threads {
    nonisolated(unsafe) private static var current: Int = {
        if let s = ProcessInfo.processInfo.environment["ISFGAN_THREADS"], let n = Int(s), n > 0 {
            return n
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Hooks run whenever the count changes (oneDNN's thread setting registers here).
    nonisolated(unsafe) static var observers: [(Int) -> Void] = []

    public static var count: Int {
        get { current }
        set {
            precondition(newValue > 0, "thread count must be positive, got \(newValue)")
            current = newValue
            for f in observers { f(newValue) }
        }
    }

    /// Runs `body` over `0..<total` split into at most `count` contiguous ranges of at
    /// least `grain` items; serial when the work is small.
    @inlinable
    public static func parallelFor(
        _ total: Int, grain: Int = 1, _ body: (Range<Int>) -> Void
    ) {
        guard total > 0 else { return }
        let pieces = min(count, max(1, total / max(grain, 1)))
        if pieces <= 1 {
            body(0..<total)
            return
        }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: pieces) { p in
                let lo = total * p / pieces
                let hi = total * (p + 1) / pieces
                if lo < hi { body(lo..<hi) }
            }
        }
    }
}
