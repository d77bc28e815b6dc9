import CDNNL
import Foundation

/// The oneDNN side of the engine: one CPU engine and stream, the thread-count hookup,
/// memory descriptors for strided tensors, and a cache of primitives keyed by shape.
///
/// Why a cache: creating a oneDNN primitive descriptor and its JIT kernel costs from a
/// fraction of a millisecond to several milliseconds, longer than small convolutions
/// take to run. The generator runs the same few dozen shapes over and over, so every
/// primitive (and every reorder between our plain NCHW tensors and oneDNN's blocked
/// layouts) is made once per shape and thread count and then reused.
///
/// Threads: Debian builds oneDNN 2.6 with the OpenMP runtime (`DNNL_CPU_RUNTIME ==
/// DNNL_RUNTIME_OMP` in `dnnl_config.h`; libdnnl links libgomp). OpenMP's thread count is
/// a per-thread setting, so `prepareThreads()` calls `omp_set_num_threads(Threads.count)`
/// on the calling thread before every primitive is made or run; the call is a cheap
/// store. The thread count is part of the cache key because oneDNN fixes a kernel's work
/// split when it makes the primitive.
enum DNNL {
    /// Failure of a oneDNN call; these are programming mistakes (bad descriptors), not
    /// user errors, so callers trap with the message.
    struct CallError: Error, CustomStringConvertible {
        let call: String
        let status: dnnl_status_t
        var description: String { "oneDNN \(call) failed with status \(status.rawValue)" }
    }

    /// Traps when a oneDNN call fails, naming the call.
    @inline(__always)
    static func check(_ status: dnnl_status_t, _ call: @autoclosure () -> String) {
        if status != dnnl_success {
            preconditionFailure("\(CallError(call: call(), status: status))")
        }
    }

    /// Like `check`, but returns whether the call succeeded (for probing what oneDNN
    /// supports).
    @inline(__always)
    static func succeeded(_ status: dnnl_status_t) -> Bool { status == dnnl_success }

    // MARK: - Engine and stream

    final class Context: @unchecked Sendable {
        let engine: dnnl_engine_t
        let stream: dnnl_stream_t

        init() {
            var e: dnnl_engine_t?
            DNNL.check(dnnl_engine_create(&e, dnnl_cpu, 0), "engine_create")
            var s: dnnl_stream_t?
            DNNL.check(
                dnnl_stream_create(&s, e, UInt32(dnnl_stream_default_flags.rawValue)),
                "stream_create")
            engine = e!
            stream = s!
        }
    }

    static let context = Context()
    static var engine: dnnl_engine_t { context.engine }

    // MARK: - Threads

    private typealias SetThreads = @convention(c) (Int32) -> Void
    private typealias GetThreads = @convention(c) () -> Int32

    /// libgomp's `omp_set_num_threads` / `omp_get_max_threads`, looked up at run time
    /// (libdnnl already loaded libgomp) so no OpenMP header or link flag is needed.
    private static let omp: (set: SetThreads, get: GetThreads)? = {
        guard let handle = dlopen(nil, RTLD_NOW),
            let set = dlsym(handle, "omp_set_num_threads"),
            let get = dlsym(handle, "omp_get_max_threads")
        else { return nil }
        return (unsafeBitCast(set, to: SetThreads.self), unsafeBitCast(get, to: GetThreads.self))
    }()

    /// Makes oneDNN's parallel regions started from this thread use `Threads.count`.
    @inline(__always)
    static func prepareThreads() {
        guard let omp else { return }
        let n = Int32(Threads.count)
        if omp.get() != n { omp.set(n) }
    }

    /// The thread count oneDNN will use from this thread (for tests and benchmarks).
    static var ompThreads: Int {
        prepareThreads()
        return Int(omp?.get() ?? -1)
    }

    // MARK: - Memory descriptors

    /// A plain float32 descriptor with the given dims and element strides.
    static func descriptor(_ dims: [Int], strides: [Int]) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        // A size-1 dim's stride is never used; give it the dense value so that an
        // otherwise dense view compares equal to oneDNN's plain layout (no reorder).
        var strides = strides
        var dense = 1
        for i in stride(from: dims.count - 1, through: 0, by: -1) {
            if dims[i] == 1 { strides[i] = dense }
            dense = strides[i] * Swift.max(dims[i], 1)
        }
        let d = dims.map(Int64.init), s = strides.map(Int64.init)
        check(
            dnnl_memory_desc_init_by_strides(&md, Int32(dims.count), d, dnnl_f32, s),
            "memory_desc_init_by_strides \(dims) \(strides)")
        return md
    }

    /// A descriptor that lets the primitive choose its layout (`format_tag_any`).
    static func anyDescriptor(_ dims: [Int]) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        check(
            dnnl_memory_desc_init_by_tag(
                &md, Int32(dims.count), dims.map(Int64.init), dnnl_f32, dnnl_format_tag_any),
            "memory_desc_init_by_tag any \(dims)")
        return md
    }

    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var a = a, b = b
        return dnnl_memory_desc_equal(&a, &b) != 0
    }

    static func byteSize(_ md: dnnl_memory_desc_t) -> Int {
        var md = md
        return dnnl_memory_desc_get_size(&md)
    }

    /// The descriptor a primitive chose for one of its arguments.
    static func query(_ pd: dnnl_primitive_desc_t, _ what: dnnl_query_t, index: Int32 = 0)
        -> dnnl_memory_desc_t
    {
        guard let md = dnnl_primitive_desc_query_md(pd, what, index) else {
            preconditionFailure("oneDNN primitive_desc_query_md(\(what.rawValue)) returned nil")
        }
        return md.pointee
    }

    // MARK: - Primitives

    /// A primitive and the descriptor it was made from; destroyed with the last reference.
    final class Primitive: @unchecked Sendable {
        let pd: dnnl_primitive_desc_t
        let primitive: dnnl_primitive_t

        /// Makes the primitive of `pd`, taking ownership of `pd`.
        init(_ pd: dnnl_primitive_desc_t) {
            self.pd = pd
            var p: dnnl_primitive_t?
            DNNL.check(dnnl_primitive_create(&p, pd), "primitive_create")
            primitive = p!
        }

        deinit {
            dnnl_primitive_destroy(primitive)
            dnnl_primitive_desc_destroy(pd)
        }

        /// Runs the primitive on `args` (oneDNN argument id, descriptor, data pointer) and
        /// waits for it.
        func execute(_ args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)]) {
            DNNL.prepareThreads()
            var memories: [dnnl_memory_t?] = []
            memories.reserveCapacity(args.count)
            defer { for m in memories { dnnl_memory_destroy(m) } }
            var execArgs: [dnnl_exec_arg_t] = []
            for (id, md, pointer) in args {
                var md = md
                var m: dnnl_memory_t?
                DNNL.check(dnnl_memory_create(&m, &md, DNNL.engine, pointer), "memory_create")
                memories.append(m)
                execArgs.append(dnnl_exec_arg_t(arg: id, memory: m))
            }
            DNNL.check(
                dnnl_primitive_execute(
                    primitive, DNNL.context.stream, Int32(execArgs.count), execArgs),
                "primitive_execute")
            DNNL.check(dnnl_stream_wait(DNNL.context.stream), "stream_wait")
        }
    }

    /// A reorder between two layouts of the same logical tensor.
    static func reorder(from src: dnnl_memory_desc_t, to dst: dnnl_memory_desc_t) -> Primitive {
        var pd: dnnl_primitive_desc_t?
        var s = src, d = dst
        check(
            dnnl_reorder_primitive_desc_create(&pd, &s, engine, &d, engine, nil),
            "reorder_primitive_desc_create")
        return Primitive(pd!)
    }

    // MARK: - Cache

    /// Primitives (or bundles of them) by a key that spells out every shape, stride and
    /// setting they depend on, including the thread count.
    final class Cache<Value>: @unchecked Sendable {
        private var entries: [String: Value] = [:]
        private let lock = NSLock()
        /// Shapes in a program are few; the bound only stops a pathological caller (a new
        /// shape every call) from growing the cache forever.
        private let limit = 512

        func value(_ key: String, make: () -> Value) -> Value {
            lock.lock()
            if let v = entries[key] {
                lock.unlock()
                return v
            }
            lock.unlock()
            DNNL.prepareThreads()
            let v = make()
            lock.lock()
            if entries.count >= limit { entries.removeAll() }
            entries[key] = v
            lock.unlock()
            return v
        }

        var count: Int {
            lock.lock(); defer { lock.unlock() }
            return entries.count
        }

        func removeAll() {
            lock.lock()
            entries.removeAll()
            lock.unlock()
        }
    }
}

/// One argument of a oneDNN call: the user's strided tensor, and (when the primitive wants
/// another layout) the reorder into or out of that layout.
struct DNNLArgument {
    /// The descriptor of the user's tensor.
    let user: dnnl_memory_desc_t
    /// The descriptor the primitive chose.
    let chosen: dnnl_memory_desc_t
    /// user → chosen (inputs) or chosen → user (outputs); nil when the layouts agree.
    let reorder: DNNL.Primitive?

    init(user: dnnl_memory_desc_t, chosen: dnnl_memory_desc_t, isOutput: Bool) {
        self.user = user
        self.chosen = chosen
        if DNNL.equal(user, chosen) {
            reorder = nil
        } else if isOutput {
            reorder = DNNL.reorder(from: chosen, to: user)
        } else {
            reorder = DNNL.reorder(from: user, to: chosen)
        }
    }

    /// Pointer to pass the primitive for input data at `pointer`: the data itself, or a
    /// reordered copy kept alive in `keep`.
    func input(_ pointer: UnsafeMutablePointer<Float>, keep: inout [TensorStorage])
        -> UnsafeMutableRawPointer
    {
        guard let reorder else { return UnsafeMutableRawPointer(pointer) }
        let buffer = TensorStorage(count: DNNL.byteSize(chosen) / 4 + 1)
        keep.append(buffer)
        reorder.execute([
            (DNNL_ARG_FROM, user, UnsafeMutableRawPointer(pointer)),
            (DNNL_ARG_TO, chosen, UnsafeMutableRawPointer(buffer.pointer)),
        ])
        return UnsafeMutableRawPointer(buffer.pointer)
    }

    /// Pointer the primitive writes output into: `pointer`, or a scratch buffer that
    /// `finishOutput` reorders into `pointer`.
    func output(_ pointer: UnsafeMutablePointer<Float>, keep: inout [TensorStorage])
        -> UnsafeMutableRawPointer
    {
        guard reorder != nil else { return UnsafeMutableRawPointer(pointer) }
        let buffer = TensorStorage(count: DNNL.byteSize(chosen) / 4 + 1)
        keep.append(buffer)
        return UnsafeMutableRawPointer(buffer.pointer)
    }

    func finishOutput(_ written: UnsafeMutableRawPointer, into pointer: UnsafeMutablePointer<Float>)
    {
        guard let reorder else { return }
        reorder.execute([
            (DNNL_ARG_FROM, chosen, written),
            (DNNL_ARG_TO, user, UnsafeMutableRawPointer(pointer)),
        ])
    }
}

/// What the oneDNN side is doing, for tests, benchmarks and diagnostics.
public enum OneDNNStatus {
    /// The OpenMP thread count oneDNN uses for calls from this thread (after applying
    /// `Threads.count`); -1 when libgomp's entry points were not found.
    public static var threadCount: Int { DNNL.ompThreads }

    /// Number of cached convolution plans (primitive plus reorders).
    public static var cachedConvolutionPlans: Int { ConvPlan.cache.count }
}
