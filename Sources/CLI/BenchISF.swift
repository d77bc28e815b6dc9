import Method
import Models
import TensorCore

/// `isfgan bench isf`: the ISF forward (official FFHQ shape: 18 W+ rows, 4 attributes,
/// width 512, random weights) for one code and for 4 styles of one code.
func runISFBenchmark(_ console: Console, repeats: Int) throws {
    let config = ISFConfig(layers: 18, attributes: 4)
    let net = ISFNetwork(config, seed: 1)
    console.out(
        "ISF forward, 18 layers × 512, 4 attributes, random weights, "
            + "\(Threads.count) threads, best of \(max(repeats, 5))"
    )
    console.out(BenchCommand.pad("codes", 7) + "ms")
    var rng = RandomGenerator(seed: 2)
    for batch in [1, 4] {
        let w = rng.normal([batch, 18, 512]), z = rng.normal([batch, 64])
        let d = Tensor.ones([batch, 4])
        _ = try GradMode.withoutGradients { try net(codes: w, z: z, targets: d) }
        var best = Double.infinity
        for _ in 0..<max(repeats, 5) {
            let t = try measureSeconds {
                _ = try GradMode.withoutGradients { try net(codes: w, z: z, targets: d) }
            }
            best = min(best, t)
        }
        console.out(BenchCommand.pad("\(batch)", 7) + String(format: "%.1f", best * 1000))
    }
}
