import TensorCore

// The PyTorch layers every model here is built from, under PyTorch's parameter names, so
// that a state dict binds to them as it does to `nn.Linear`, `nn.LayerNorm`, `nn.Conv2d`.
// Parameters start at zero (LayerNorm: weight 1); models initialise or load them.

/// `nn.Linear`: `x · weightᵀ + bias`, weight [out, in], bias [out].
public final class Linear: Module {
    public let weight: Parameter  // [out, in]
    public let bias: Parameter?  // [out]

    public init(_ inputs: Int, _ outputs: Int, bias: Bool = true) {
        weight = Parameter(Tensor.zeros([outputs, inputs]))
        self.bias = bias ? Parameter(Tensor.zeros([outputs])) : nil
        super.init()
        register("weight", weight)
        if let b = self.bias { register("bias", b) }
    }

    /// x [..., in] → [..., out].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.linear(weight.value, bias: bias?.value)
    }
}

/// `nn.LayerNorm(width)` over the last axis, affine (eps 1e-5 by default).
public final class LayerNorm: Module {
    public let weight: Parameter  // [width]
    public let bias: Parameter  // [width]
    public let eps: Float

    public init(_ width: Int, eps: Float = 1e-5) {
        weight = Parameter(Tensor.ones([width]))
        bias = Parameter(Tensor.zeros([width]))
        self.eps = eps
        super.init()
        register("weight", weight)
        register("bias", bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.layerNorm(weight: weight.value, bias: bias.value, eps: eps)
    }
}

/// `nn.Conv2d` with a square kernel: weight [out, in, k, k], optional bias [out].
public final class Conv2d: Module {
    public let weight: Parameter  // [out, in, k, k]
    public let bias: Parameter?  // [out]
    public let stride: Int
    public let padding: Int

    public init(
        _ inputs: Int, _ outputs: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
        bias: Bool = true
    ) {
        weight = Parameter(Tensor.zeros([outputs, inputs, kernel, kernel]))
        self.bias = bias ? Parameter(Tensor.zeros([outputs])) : nil
        self.stride = stride
        self.padding = padding
        super.init()
        register("weight", weight)
        if let b = self.bias { register("bias", b) }
    }

    /// Inputs per output value (PyTorch's fan-in for initialisation).
    public var fanIn: Int { weight.shape[1] * weight.shape[2] * weight.shape[3] }

    /// x [N, in, H, W] → [N, out, Ho, Wo].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.conv2d(weight.value, bias: bias?.value, stride: stride, padding: padding)
    }
}
