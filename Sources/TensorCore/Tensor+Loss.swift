/// Loss primitives and softmax, as PyTorch defines them. All are written with
/// differentiable tensor ops.

/// How a loss combines its elementwise values (PyTorch's `reduction=`).
public enum LossReduction: Sendable {
    case mean
    case sum
    /// The elementwise losses, shaped like the input.
    case none
}

/// Loss functions of predictions against targets of the same shape.
public enum Loss {
    /// `nn.BCEWithLogitsLoss(pos_weight=posWeight)`:
    ///
    ///     loss = (1 − y)·x + (1 + (posWeight − 1)·y) · softplus(−x)
    ///
    /// which equals `−[posWeight·y·log σ(x) + (1 − y)·log(1 − σ(x))]` but never takes
    /// the log of a rounded probability, so it stays finite for any logit.
    ///
    /// - Parameters:
    ///   - logits: `x`, any shape.
    ///   - targets: `y` in [0, 1], the same shape as `logits`.
    ///   - posWeight: weight of the positive term, broadcast against `logits` (PyTorch
    ///     passes one weight per class, [C], for [N, C] logits); nil means 1.
    public static func binaryCrossEntropyWithLogits(
        _ logits: Tensor, targets: Tensor, posWeight: Tensor? = nil,
        reduction: LossReduction = .mean
    ) -> Tensor {
        requireSameShape(logits, targets, op: "binaryCrossEntropyWithLogits")
        let softplusNegative = (-logits).softplus()
        var weighted = softplusNegative
        if let posWeight { weighted = (1 + (posWeight - 1) * targets) * softplusNegative }
        return reduce((1 - targets) * logits + weighted, reduction)
    }

    /// `nn.BCELoss` on probabilities: `−[y·log p + (1 − y)·log(1 − p)]`, each log clamped
    /// at −100 as PyTorch does so that p = 0 or 1 gives a finite loss.
    public static func binaryCrossEntropy(
        _ probabilities: Tensor, targets: Tensor, reduction: LossReduction = .mean
    ) -> Tensor {
        requireSameShape(probabilities, targets, op: "binaryCrossEntropy")
        let logP = probabilities.log().clamped(min: -100)
        let logQ = (1 - probabilities).log().clamped(min: -100)
        return reduce(-(targets * logP + (1 - targets) * logQ), reduction)
    }

    /// `nn.L1Loss`: `|prediction − target|`.
    public static func l1(
        _ prediction: Tensor, _ target: Tensor, reduction: LossReduction = .mean
    ) -> Tensor {
        requireSameShape(prediction, target, op: "l1")
        return reduce((prediction - target).abs(), reduction)
    }

    /// `nn.MSELoss`: `(prediction − target)²`.
    public static func mse(
        _ prediction: Tensor, _ target: Tensor, reduction: LossReduction = .mean
    ) -> Tensor {
        requireSameShape(prediction, target, op: "mse")
        return reduce((prediction - target).squared(), reduction)
    }

    static func reduce(_ loss: Tensor, _ reduction: LossReduction) -> Tensor {
        switch reduction {
        case .mean: return loss.mean()
        case .sum: return loss.sum()
        case .none: return loss
        }
    }

    private static func requireSameShape(_ a: Tensor, _ b: Tensor, op: String) {
        precondition(
            a.shape == b.shape,
            "\(op): input \(describe(a.shape)) and target \(describe(b.shape)) differ in shape")
    }
}

extension Tensor {
    /// `exp(x) / Σ exp(x)` along `axis`, computed from `x − max(x)` so that no exponent
    /// overflows.
    public func softmax(axis: Int) -> Tensor {
        let a = must { try Shape.axis(axis, rank: rank, op: "softmax") }
        let e = (self - max(axes: [a], keepDims: true).detached()).exp()
        return e / e.sum(axes: [a], keepDims: true)
    }

    /// `x − log Σ exp(x)` along `axis` (stable: the max is taken out before `exp`).
    public func logSoftmax(axis: Int) -> Tensor {
        let a = must { try Shape.axis(axis, rank: rank, op: "logSoftmax") }
        // The max only shifts the values; its gradient cancels, so it is held constant.
        let shifted = self - max(axes: [a], keepDims: true).detached()
        return shifted - shifted.exp().sum(axes: [a], keepDims: true).log()
    }
}
