import Foundation
import Models
import TensorCore

/// One row of `isfgan bench invert`: where the time of one projection step goes.
public struct ProjectionBenchmarkRow: Sendable {
    public var generator: String
    public var space: String
    /// Milliseconds: rendering alone (no graph), rendering with its backward to the code,
    /// the perceptual distance with its backward, and a whole step of `Projector`.
    public var render: Double
    public var renderBackward: Double
    public var perceptualBackward: Double
    public var step: Double
}

/// Times the parts of a projection step for `generator`: each part runs once to warm up
/// (oneDNN builds its primitives then) and is then timed `repeats` times, keeping the
/// best; the whole step is the median over `steps` steps of a short projection.
public func benchmarkProjection(
    generator: any ImageGenerator, name: String, space: ProjectionSpace,
    perceptual: any PerceptualLoss, repeats: Int = 3, steps: Int = 8,
    progress: (String) -> Void = { _ in }
) throws -> ProjectionBenchmarkRow {
    var settings = ProjectionSettings(space: space)
    settings.steps = steps
    settings.statisticsSamples = 100
    let projector = try Projector(generator: generator, perceptual: perceptual, settings: settings)
    var rng = RandomGenerator(seed: 3)
    let codes = generator.sampleCodes(count: 1, generator: &rng)  // [1, L, D]
    let target = GradMode.withoutGradients { generator.render(codes, noise: .constant) }
    let distance = try PerceptualTarget(perceptual, target: projector.perceptualInput(target))

    func best(_ what: String, _ body: () throws -> Void) rethrows -> Double {
        progress("\(name): \(what)")
        try body()
        var t = Double.infinity
        for _ in 0..<repeats { t = min(t, try measureSeconds(body)) }
        return t * 1000
    }
    let render = best("render") {
        GradMode.withoutGradients { _ = generator.render(codes, noise: .constant) }
    }
    let renderBackward = best("render + backward") {
        let c = codes.detached().requiringGrad()
        let image = generator.render(c, noise: .constant)
        _ = Tensor.gradients(of: image.sum(), withRespectTo: [c])
    }
    let perceptualBackward = try best("perceptual + backward") {
        let x = target.detached().requiringGrad()
        let d = try distance(projector.perceptualInput(x))
        _ = Tensor.gradients(of: d, withRespectTo: [x])
    }
    progress("\(name): \(steps) projection steps")
    var stamps: [UInt64] = [DispatchTime.now().uptimeNanoseconds]
    _ = try projector.project(target) { _ in stamps.append(DispatchTime.now().uptimeNanoseconds) }
    // The first step also builds the primitives of the first backward; leave it out.
    let durations = zip(stamps.dropFirst(2), stamps.dropFirst(1)).map {
        Double($0 - $1) / 1e6
    }.sorted()
    return ProjectionBenchmarkRow(
        generator: name, space: space.rawValue, render: render, renderBackward: renderBackward,
        perceptualBackward: perceptualBackward, step: durations[durations.count / 2])
}
