import TensorCore

/// Prints the kernel table of `isfgan bench ops`.
func runOpsBenchmark(_ console: Console, repeats: Int) throws {
    throw UsageError("isfgan bench ops: not available in this build yet")
}
