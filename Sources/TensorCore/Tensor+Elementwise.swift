import Foundation

// MARK: - Kernel functions

struct AddF: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a + b }
}
struct SubF: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a - b }
}
struct MulF: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a * b }
}
struct DivF: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a / b }
}
struct MaxF: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float {
        a.isNaN || a >= b ? a : b
    }
}
struct MinF: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float {
        a.isNaN || a <= b ? a : b
    }
}
/// 1 where a > b, else 0 (a mask; not differentiable).
struct GreaterF: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a > b ? 1 : 0 }
}
struct EqualF: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a == b ? 1 : 0 }
}

struct Affine: UnaryFunction {
    let scale: Float, shift: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x * scale + shift }
}
struct ExpF: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { Foundation.exp(x) }
}
struct LogF: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { Foundation.log(x) }
}
struct SqrtF: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x.squareRoot() }
}
struct RsqrtF: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { 1 / x.squareRoot() }
}
struct AbsF: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { Swift.abs(x) }
}
struct SignF: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : 0) }
}
struct PowF: UnaryFunction {
    let p: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float {
        p == 2 ? x * x : (p == 1 ? x : Foundation.pow(x, p))
    }
}
struct ClampF: UnaryFunction {
    let lo: Float, hi: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float {
        x.isNaN ? x : Swift.min(Swift.max(x, lo), hi)
    }
}
/// 1 inside [lo, hi], else 0: where clamp passes gradients.
struct InsideF: UnaryFunction {
    let lo: Float, hi: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x >= lo && x <= hi ? 1 : 0 }
}
struct LeakyReluF: UnaryFunction {
    let slope: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x > 0 ? x : x * slope }
}
/// The leaky ReLU's derivative (slope where x ≤ 0, as PyTorch).
struct LeakyReluSlopeF: UnaryFunction {
    let slope: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x > 0 ? 1 : slope }
}
struct TanhF: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { Foundation.tanh(x) }
}
struct SigmoidF: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float {
        x >= 0 ? 1 / (1 + Foundation.exp(-x)) : Foundation.exp(x) / (1 + Foundation.exp(x))
    }
}
/// log(1 + e^x), stable for large |x| (PyTorch's threshold 20 gives x itself).
struct SoftplusF: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float {
        x > 20 ? x : Foundation.log1p(Foundation.exp(x))
    }
}

// MARK: - Arithmetic

extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let out = ElementwiseKernels.zip(a, b, AddF(), op: "add")
        return recorded(out, op: "add", inputs: [a, b]) { g, needs in
            [
                needs[0] ? g.summed(toShape: a.shape) : nil,
                needs[1] ? g.summed(toShape: b.shape) : nil,
            ]
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let out = ElementwiseKernels.zip(a, b, SubF(), op: "sub")
        return recorded(out, op: "sub", inputs: [a, b]) { g, needs in
            [
                needs[0] ? g.summed(toShape: a.shape) : nil,
                needs[1] ? (-g).summed(toShape: b.shape) : nil,
            ]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let out = ElementwiseKernels.zip(a, b, MulF(), op: "mul")
        return recorded(out, op: "mul", inputs: [a, b]) { g, needs in
            [
                needs[0] ? (g * b).summed(toShape: a.shape) : nil,
                needs[1] ? (g * a).summed(toShape: b.shape) : nil,
            ]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = ElementwiseKernels.zip(a, b, DivF(), op: "div")
        return recorded(out, op: "div", inputs: [a, b]) { g, needs in
            [
                needs[0] ? (g / b).summed(toShape: a.shape) : nil,
                needs[1] ? (-(g * a) / (b * b)).summed(toShape: b.shape) : nil,
            ]
        }
    }

    /// `x * scale + shift` in one pass.
    public func affine(scale: Float, shift: Float = 0) -> Tensor {
        let out = ElementwiseKernels.map(self, Affine(scale: scale, shift: shift))
        return Tensor.recorded(out, op: "affine", inputs: [self]) { g, _ in [g * scale] }
    }

    public static prefix func - (x: Tensor) -> Tensor { x.affine(scale: -1) }
    public static func + (a: Tensor, b: Float) -> Tensor { a.affine(scale: 1, shift: b) }
    public static func + (a: Float, b: Tensor) -> Tensor { b.affine(scale: 1, shift: a) }
    public static func - (a: Tensor, b: Float) -> Tensor { a.affine(scale: 1, shift: -b) }
    public static func - (a: Float, b: Tensor) -> Tensor { b.affine(scale: -1, shift: a) }
    public static func * (a: Tensor, b: Float) -> Tensor { a.affine(scale: b) }
    public static func * (a: Float, b: Tensor) -> Tensor { b.affine(scale: a) }
    public static func / (a: Tensor, b: Float) -> Tensor { a.affine(scale: 1 / b) }
    public static func / (a: Float, b: Tensor) -> Tensor { Tensor.full(b.shape, a) / b }

    public static func += (a: inout Tensor, b: Tensor) { a = a + b }
    public static func -= (a: inout Tensor, b: Tensor) { a = a - b }
    public static func *= (a: inout Tensor, b: Tensor) { a = a * b }

    /// Elementwise maximum; where the two are equal each gets half the gradient (as in
    /// PyTorch).
    public static func maximum(_ a: Tensor, _ b: Tensor) -> Tensor {
        let out = ElementwiseKernels.zip(a, b, MaxF(), op: "maximum")
        return recorded(out, op: "maximum", inputs: [a, b]) { g, needs in
            let aWins = ElementwiseKernels.zip(a, b, GreaterF(), op: "maximum")
            let tie = ElementwiseKernels.zip(a, b, EqualF(), op: "maximum")
            let wa = aWins + tie * 0.5, wb = (1 - aWins) - tie * 0.5
            return [
                needs[0] ? (g * wa).summed(toShape: a.shape) : nil,
                needs[1] ? (g * wb).summed(toShape: b.shape) : nil,
            ]
        }
    }

    public static func minimum(_ a: Tensor, _ b: Tensor) -> Tensor {
        -maximum(-a, -b)
    }

    /// `a + t * (b - a)`.
    public static func lerp(_ a: Tensor, _ b: Tensor, _ t: Float) -> Tensor {
        a + (b - a) * t
    }

    /// `a + t * (b - a)` with a tensor weight.
    public static func lerp(_ a: Tensor, _ b: Tensor, _ t: Tensor) -> Tensor {
        a + (b - a) * t
    }
}

// MARK: - Unary math

extension Tensor {
    /// Elementwise `x^p` for a constant exponent.
    public func pow(_ p: Float) -> Tensor {
        let out = ElementwiseKernels.map(self, PowF(p: p))
        return Tensor.recorded(out, op: "pow", inputs: [self]) { g, _ in
            [p == 2 ? g * self * 2 : g * self.pow(p - 1) * p]
        }
    }

    public func squared() -> Tensor { pow(2) }

    public func exp() -> Tensor {
        let out = ElementwiseKernels.map(self, ExpF())
        return Tensor.recorded(out, op: "exp", inputs: [self]) { g, _ in
            // Recompute e^x from the input so that second derivatives see it.
            [g * (GradMode.isEnabled ? self.exp() : out)]
        }
    }

    public func log() -> Tensor {
        let out = ElementwiseKernels.map(self, LogF())
        return Tensor.recorded(out, op: "log", inputs: [self]) { g, _ in [g / self] }
    }

    public func sqrt() -> Tensor {
        let out = ElementwiseKernels.map(self, SqrtF())
        return Tensor.recorded(out, op: "sqrt", inputs: [self]) { g, _ in
            [g * 0.5 / (GradMode.isEnabled ? self.sqrt() : out)]
        }
    }

    public func rsqrt() -> Tensor {
        let out = ElementwiseKernels.map(self, RsqrtF())
        return Tensor.recorded(out, op: "rsqrt", inputs: [self]) { g, _ in
            // d/dx x^(-1/2) = -1/2 x^(-3/2)
            [g * self.pow(-1.5) * -0.5]
        }
    }

    public func abs() -> Tensor {
        let out = ElementwiseKernels.map(self, AbsF())
        return Tensor.recorded(out, op: "abs", inputs: [self]) { g, _ in
            [g * ElementwiseKernels.map(self, SignF())]
        }
    }

    /// Values limited to `[min, max]`; gradients pass where the input is inside.
    public func clamped(min lo: Float = -.infinity, max hi: Float = .infinity) -> Tensor {
        let out = ElementwiseKernels.map(self, ClampF(lo: lo, hi: hi))
        return Tensor.recorded(out, op: "clamp", inputs: [self]) { g, _ in
            [g * ElementwiseKernels.map(self, InsideF(lo: lo, hi: hi))]
        }
    }

    public func relu() -> Tensor { leakyRelu(slope: 0) }

    /// `x` where positive, `slope * x` elsewhere.
    public func leakyRelu(slope: Float) -> Tensor {
        let out = ElementwiseKernels.map(self, LeakyReluF(slope: slope))
        return Tensor.recorded(out, op: "leakyRelu", inputs: [self]) { g, _ in
            [g * ElementwiseKernels.map(self, LeakyReluSlopeF(slope: slope))]
        }
    }

    public func tanh() -> Tensor {
        let out = ElementwiseKernels.map(self, TanhF())
        return Tensor.recorded(out, op: "tanh", inputs: [self]) { g, _ in
            let y = GradMode.isEnabled ? self.tanh() : out
            return [g * (1 - y * y)]
        }
    }

    public func sigmoid() -> Tensor {
        let out = ElementwiseKernels.map(self, SigmoidF())
        return Tensor.recorded(out, op: "sigmoid", inputs: [self]) { g, _ in
            let y = GradMode.isEnabled ? self.sigmoid() : out
            return [g * y * (1 - y)]
        }
    }

    /// `log(1 + e^x)`; linear above 20 as in PyTorch.
    public func softplus() -> Tensor {
        let out = ElementwiseKernels.map(self, SoftplusF())
        return Tensor.recorded(out, op: "softplus", inputs: [self]) { g, _ in
            [g * self.sigmoid()]
        }
    }
}
