import TensorCore

/// Prints the kernel table of `isfgan bench ops`.
func runOpsBenchmark(_ console: Console, repeats: Int) throws {
    console.err("timing kernels with \(Threads.count) threads (best of \(repeats))…")
    let rows = OpBenchmarks.run(repeats: repeats)
    console.out(OpBenchmarks.table(rows))
}
