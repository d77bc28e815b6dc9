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
    ///
    /// The pieces run on libgomp's thread team (the one oneDNN uses) when libgomp is
    /// loaded: with a second pool of threads, OpenMP's workers would still be spinning
    /// after each oneDNN call while ours try to run, and on two cores the two pools
    /// would take turns. Dispatch is the fallback.
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
            if let omp = OpenMPTeam.shared {
                var job = OpenMPTeam.Job(total: total, pieces: pieces, body: body)
                withUnsafeMutablePointer(to: &job) { p in
                    omp.parallel(OpenMPTeam.thunk, UnsafeMutableRawPointer(p), UInt32(pieces), 0)
                }
                return
            }
            DispatchQueue.concurrentPerform(iterations: pieces) { p in
                let lo = total * p / pieces
                let hi = total * (p + 1) / pieces
                if lo < hi { body(lo..<hi) }
            }
        }
    }
}

/// libgomp's team entry points, looked up at run time (libdnnl loads libgomp).
struct OpenMPTeam {
    typealias Thunk = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias Parallel = @convention(c) (Thunk, UnsafeMutableRawPointer?, UInt32, UInt32) -> Void
    typealias IntGetter = @convention(c) () -> Int32

    let parallel: Parallel
    let threadNumber: IntGetter
    let teamSize: IntGetter

    struct Job {
        let total: Int
        let pieces: Int
        let body: (Range<Int>) -> Void
    }

    static let shared: OpenMPTeam? = {
        guard ProcessInfo.processInfo.environment["ISFGAN_NO_OPENMP_POOL"] == nil,
            let handle = dlopen(nil, RTLD_NOW),
            let p = dlsym(handle, "GOMP_parallel"),
            let t = dlsym(handle, "omp_get_thread_num"),
            let n = dlsym(handle, "omp_get_num_threads")
        else { return nil }
        return OpenMPTeam(
            parallel: unsafeBitCast(p, to: Parallel.self),
            threadNumber: unsafeBitCast(t, to: IntGetter.self),
            teamSize: unsafeBitCast(n, to: IntGetter.self))
    }()

    /// Each team member takes pieces t, t + T, t + 2T, … (the team may be smaller than
    /// asked for).
    static let thunk: Thunk = { raw in
        guard let raw, let team = OpenMPTeam.shared else { return }
        let job = raw.assumingMemoryBound(to: Job.self).pointee
        let size = max(Int(team.teamSize()), 1)
        var p = Int(team.threadNumber())
        while p < job.pieces {
            let lo = job.total * p / job.pieces
            let hi = job.total * (p + 1) / job.pieces
            if lo < hi { job.body(lo..<hi) }
            p += size
        }
    }
}
