import Foundation
import Method
import Models
import TensorCore

/// `isfgan bench invert`: milliseconds per projection step and its parts, for the DCGAN
/// face generator (64 px, z; the fetched weights, else random ones) and the config-f
/// StyleGAN2 of `--size` (random weights, w), with ST-LPIPS alex (the fetched weights, else
/// untrained ones: the same work).
func runInvertBenchmark(_ console: Console, size: Int, repeats: Int) throws {
    let perceptual: any PerceptualLoss
    var notes: [String] = []
    if let m = try? STLPIPS.load(.alex) {
        perceptual = m
    } else {
        perceptual = STLPIPS(backbone: .alex)
        notes.append("ST-LPIPS weights not fetched: untrained network (same work)")
    }
    let dcgan: any ImageGenerator
    if let g = try? GeneratorLoader.load(spec: "dcgan").generator {
        dcgan = g
    } else {
        dcgan = DCGANGenerator()
        notes.append("DCGAN weights not fetched: zero weights (same work)")
    }
    let styleGAN = StyleGAN2Generator.randomlyInitialised(.configF(size: size), seed: 1)
    let cases: [(any ImageGenerator, String, ProjectionSpace, ModulationForm?)] = [
        (dcgan, "DCGAN 64 px", .z, nil),
        (styleGAN, "config-f \(size) px grp", .w, .grouped),
        (styleGAN, "config-f \(size) px shr", .w, .shared),
    ]
    let progress = ProgressLine(console: console)
    var rows: [ProjectionBenchmarkRow] = []
    for (g, name, space, form) in cases {
        if let form { styleGAN.modulationForm = form }
        rows.append(
            try benchmarkProjection(
                generator: g, name: name, space: space, perceptual: perceptual,
                repeats: repeats, progress: progress.update))
    }
    progress.finish()
    console.out(
        "projection step, batch 1, \(perceptual.perceptualName), \(Threads.count) threads "
            + "(parts: best of \(repeats); step: median of 7)")
    let pad = BenchCommand.pad
    console.out(
        pad("generator", 24) + pad("space", 6) + pad("render", 8) + pad("+backward", 10)
            + pad("perceptual+bwd", 15) + pad("step ms", 8) + "500 steps")
    for r in rows {
        func ms(_ v: Double, _ n: Int) -> String { pad(String(format: "%.0f", v), n) }
        console.out(
            pad(r.generator, 24) + pad(r.space, 6) + ms(r.render, 8) + ms(r.renderBackward, 10)
                + ms(r.perceptualBackward, 15) + ms(r.step, 8)
                + String(format: "%.0f s", r.step * 500 / 1000))
    }
    for n in notes { console.out("note: \(n)") }
}
