import Foundation
import TensorCore

/// Adam as PyTorch's `torch.optim.Adam` computes it (single-tensor path), including its L2
/// `weight_decay` (added to the gradient, not decoupled), in the same float32 operation
/// order so that a step here and a step there agree to rounding.
///
///     g ← ∇ + λ·p
///     m ← lerp(m, g, 1 − β₁);   v ← β₂·v + (1 − β₂)·g²
///     p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
public final class Adam {
    public struct State: Codable, Sendable {
        public var step: Int
        public var m: [[Float]]
        public var v: [[Float]]
    }

    public let parameters: [Parameter]
    public var learningRate: Float
    public var beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    public private(set) var step = 0
    private var m: [Tensor]
    private var v: [Tensor]

    public init(
        _ parameters: [Parameter], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
        epsilon: Float = 1e-8, weightDecay: Float = 0
    ) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        m = parameters.map { Tensor.zeros($0.shape) }
        v = parameters.map { Tensor.zeros($0.shape) }
    }

    /// One update from the parameters' accumulated gradients (none: left unchanged).
    public func update() {
        step += 1
        let bc1 = 1 - Double(beta1).pow(step)
        let bc2 = 1 - Double(beta2).pow(step)
        let stepSize = Float(Double(learningRate) / bc1)
        let bc2Sqrt = Float(bc2.squareRoot())
        let (b1, b2, eps, wd) = (beta1, beta2, epsilon, weightDecay)
        let w1 = 1 - b1
        for (i, p) in parameters.enumerated() {
            guard let grad = p.grad else { continue }
            let g = grad.contiguous(), value = p.value.detached().contiguous()
            let out = Tensor(uninitializedShape: p.shape)
            let pg = g.pointer, pp = value.pointer, pm = m[i].pointer, pv = v[i].pointer
            let po = out.pointer
            Threads.parallelFor(p.value.count, grain: 1 << 14) { r in
                for j in r {
                    var gj = pg[j]
                    if wd != 0 { gj = gj + pp[j] * wd }
                    // PyTorch's lerp: the weight ≥ 0.5 branch is written from the end.
                    pm[j] = w1 < 0.5 ? pm[j] + w1 * (gj - pm[j]) : gj - (gj - pm[j]) * (1 - w1)
                    pv[j] = pv[j] * b2 + (1 - b2) * (gj * gj)
                    let denom = pv[j].squareRoot() / bc2Sqrt + eps
                    po[j] = pp[j] + (-stepSize) * (pm[j] / denom)
                }
            }
            p.assign(out)
        }
    }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    public var state: State {
        State(step: step, m: m.map(\.scalars), v: v.map(\.scalars))
    }

    /// Restores a saved state; the parameter list must be the one it was saved from.
    public func restore(_ s: State) throws {
        guard s.m.count == parameters.count, s.v.count == parameters.count else {
            throw StateDictError(
                source: "optimiser state",
                problems: ["has \(s.m.count) tensors, the model has \(parameters.count)"])
        }
        for (i, p) in parameters.enumerated() where s.m[i].count != p.value.count {
            throw StateDictError(
                source: "optimiser state",
                problems: ["tensor \(i) has \(s.m[i].count) values, parameter has \(p.value.count)"]
            )
        }
        step = s.step
        m = zip(parameters, s.m).map { Tensor(shape: $0.shape, $1) }
        v = zip(parameters, s.v).map { Tensor(shape: $0.shape, $1) }
    }
}

extension Double {
    fileprivate func pow(_ n: Int) -> Double { Foundation.pow(self, Double(n)) }
}

/// Scales all gradients so that their joint 2-norm is at most `maxNorm`, as PyTorch's
/// `clip_grad_norm_` (coefficient `maxNorm / (norm + 1e-6)`, clamped at 1). Returns the
/// norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maxNorm: Float) -> Float {
    let grads = parameters.compactMap { $0.grad }
    guard !grads.isEmpty else { return 0 }
    let norms = grads.map { $0.detached().norm() }
    let total = Tensor.stack(norms).norm().item
    let coef = Swift.min(maxNorm / (total + 1e-6), 1)
    for p in parameters {
        guard let g = p.grad else { continue }
        p.value.grad = GradMode.withoutGradients { g.detached() * coef }
    }
    return total
}

/// An exponential moving average of a module's parameters (the official code's
/// `moving_average`: `avg ← lerp(p, avg, β)` with PyTorch's lerp rounding).
public func updateMovingAverage(_ average: Module, toward model: Module, beta: Float = 0.999) {
    let avg = average.namedParameters(), live = model.namedParameters()
    precondition(avg.count == live.count, "moving average: modules differ")
    for ((_, a), (_, p)) in zip(avg, live) {
        let pa = a.value.detached().contiguous(), pp = p.value.detached().contiguous()
        let out = Tensor(uninitializedShape: a.shape)
        let x = pa.pointer, y = pp.pointer, o = out.pointer
        Threads.parallelFor(out.count, grain: 1 << 15) { r in
            for j in r {
                // torch.lerp(p, avg, β): weight ≥ 0.5 is computed from the end point.
                o[j] = beta < 0.5 ? y[j] + beta * (x[j] - y[j]) : x[j] - (x[j] - y[j]) * (1 - beta)
            }
        }
        a.assign(out)
    }
}

/// The learning-rate schedule of the official runs: timm's `CosineLRScheduler` with a
/// linear warm-up that is not a prefix (the cosine is over the whole run).
///
///     f(t) = w₀ + t·(peak − w₀)/T_w                   for t < T_w
///     f(t) = floor + ½(peak − floor)(1 + cos(π t / T))  otherwise
///
/// Iteration i (0-based) runs with f(i − 1), and with w₀ at i = 0 (the reference's
/// scheduler steps after the optimiser); without a warm-up, iteration 0 runs at the peak.
public struct CosineSchedule: Codable, Sendable, Equatable {
    public var peak: Double
    public var floor: Double = 5e-6
    public var warmupStart: Double = 5e-7
    public var warmupSteps: Int = 5000
    public var totalSteps: Int

    public init(
        peak: Double, totalSteps: Int, floor: Double = 5e-6, warmupStart: Double = 5e-7,
        warmupSteps: Int = 5000
    ) {
        self.peak = peak
        self.totalSteps = totalSteps
        self.floor = floor
        self.warmupStart = warmupStart
        self.warmupSteps = warmupSteps
    }

    /// f(t).
    public func value(at t: Int) -> Double {
        if t < warmupSteps {
            return warmupStart + Double(t) * (peak - warmupStart) / Double(warmupSteps)
        }
        return floor + 0.5 * (peak - floor) * (1 + cos(Double.pi * Double(t) / Double(totalSteps)))
    }

    /// The rate iteration `i` runs with.
    public func rate(forIteration i: Int) -> Double {
        i == 0 ? (warmupSteps > 0 ? warmupStart : value(at: 0)) : value(at: i - 1)
    }
}
