import Formats
import Foundation
import Layers
import TensorCore

/// `nn.BatchNorm2d` in evaluation mode: normalises with the stored running statistics.
///
/// `num_batches_tracked` is kept only so that the state dict binds strictly; evaluation
/// never reads it.
private final class DCGANBatchNorm: Module {
    let weight: Parameter  // [C]
    let bias: Parameter  // [C]
    let runningMean: Parameter  // [C]
    let runningVar: Parameter  // [C]
    let batchesTracked: Parameter  // [] (int64 in the file)
    let eps: Float

    init(_ channels: Int, eps: Float = 1e-5) {
        weight = Parameter(Tensor.ones([channels]))
        bias = Parameter(Tensor.zeros([channels]))
        runningMean = Parameter(Tensor.zeros([channels]), buffer: true)
        runningVar = Parameter(Tensor.ones([channels]), buffer: true)
        batchesTracked = Parameter(Tensor.zeros([]), buffer: true)
        self.eps = eps
        super.init()
        register("weight", weight)
        register("bias", bias)
        register("running_mean", runningMean)
        register("running_var", runningVar)
        register("num_batches_tracked", batchesTracked)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        x.batchNormInference(
            runningMean: runningMean.value, runningVariance: runningVar.value,
            weight: weight.value, bias: bias.value, eps: eps)
    }
}

/// A transposed convolution without bias (`nn.ConvTranspose2d(..., bias=False)`).
private final class DCGANConvTranspose: Module {
    let weight: Parameter  // [in, out, k, k] (PyTorch's layout)
    let stride: Int, padding: Int

    init(_ inputs: Int, _ outputs: Int, kernel: Int, stride: Int, padding: Int) {
        weight = Parameter(Tensor.zeros([inputs, outputs, kernel, kernel]))
        self.stride = stride
        self.padding = padding
        super.init()
        register("weight", weight)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        x.convTranspose2d(weight.value, stride: stride, padding: padding)
    }
}

/// A module whose children are registered under their positions ("0", "1", …), as in
/// `nn.Sequential`; layers without parameters (ReLU, Tanh) leave gaps in the numbering.
private final class DCGANSequential: Module {}

/// The DCGAN face generator of `gan-face-generate` 1.1.1 (PyTorch's DCGAN tutorial
/// layout): z [N, nz, 1, 1] → four blocks of ConvTranspose2d + BatchNorm2d (running
/// statistics) + ReLU, doubling the side from 4 px, then ConvTranspose2d + tanh → 64×64
/// RGB in [−1, 1].
///
/// State dict keys: `main.{0,3,6,9,12}.weight` (transposed convolutions, no biases) and
/// `main.{1,4,7,10}.*` (batch norms). Weights are frozen: rendering is differentiable
/// with respect to the codes only.
public final class DCGANGenerator: Module, ImageGenerator {
    /// Width of z (100 for the face model).
    public let latentWidth: Int
    /// Output channels of the four hidden blocks (512, 256, 128, 64 for the face model).
    public let widths: [Int]
    /// Image channels (3).
    public let imageChannels: Int

    private let convs: [DCGANConvTranspose]
    private let norms: [DCGANBatchNorm]

    /// An unloaded generator of the given sizes (weights zero until `load`).
    public init(
        latentWidth: Int = 100, widths: [Int] = [512, 256, 128, 64], imageChannels: Int = 3
    ) {
        precondition(widths.count == 4, "DCGAN: four hidden widths, got \(widths)")
        self.latentWidth = latentWidth
        self.widths = widths
        self.imageChannels = imageChannels
        let ins = [latentWidth] + widths
        let outs = widths + [imageChannels]
        convs = (0..<5).map { i in
            i == 0
                ? DCGANConvTranspose(ins[i], outs[i], kernel: 4, stride: 1, padding: 0)
                : DCGANConvTranspose(ins[i], outs[i], kernel: 4, stride: 2, padding: 1)
        }
        norms = widths.map { DCGANBatchNorm($0) }
        super.init()
        let main = DCGANSequential()
        for i in 0..<5 {
            main.register("\(3 * i)", convs[i])
            if i < 4 { main.register("\(3 * i + 1)", norms[i]) }
        }
        register("main", main)
    }

    // MARK: ImageGenerator

    public var codeLayers: Int { 1 }
    public var codeWidth: Int { latentWidth }
    public var imageSize: Int { 64 }
    public var summary: String {
        "DCGAN generator, 64 px, z \(latentWidth), widths "
            + widths.map(String.init).joined(separator: "/")
    }

    /// Codes [count, 1, nz] drawn from N(0, 1), the distribution the model was trained on.
    public func sampleCodes(count: Int, generator: inout RandomGenerator) -> Tensor {
        generator.normal([count, 1, latentWidth])
    }

    /// Images [N, 3, 64, 64] (raw tanh output) from codes [N, 1, nz]; `noise` is ignored
    /// (the model has no noise inputs).
    public func render(_ codes: Tensor, noise: NoiseMode = .zero) -> Tensor {
        precondition(
            codes.rank == 3 && codes.shape[1] == 1 && codes.shape[2] == latentWidth,
            "DCGAN.render: codes \(describe(codes.shape)), want [N, 1, \(latentWidth)]")
        return activations(codes.reshaped([codes.shape[0], latentWidth, 1, 1])).last!
    }

    /// The output of each block for z [N, nz, 1, 1]: the four ReLU outputs
    /// ([N, 512, 4, 4] … [N, 64, 32, 32]) and the image [N, 3, 64, 64].
    public func activations(_ z: Tensor) -> [Tensor] {
        precondition(
            z.rank == 4 && z.shape[1] == latentWidth && z.shape[2] == 1 && z.shape[3] == 1,
            "DCGAN: z \(describe(z.shape)), want [N, \(latentWidth), 1, 1]")
        var x = z
        var out: [Tensor] = []
        for i in 0..<4 {
            x = norms[i](convs[i](x)).relu()
            out.append(x)
        }
        out.append(convs[4](x).tanh())
        return out
    }

    // MARK: Loading

    /// Builds a generator from a state dict, reading the sizes off the keys, binding
    /// strictly and freezing every weight. `source` names the file in errors.
    public static func load(_ state: [String: Tensor], source: String) throws -> DCGANGenerator {
        func shape(_ key: String) throws -> [Int] {
            guard let t = state[key] else {
                throw ModelError.notRecognised(
                    source, "no key '\(key)': not a DCGAN generator state dict")
            }
            guard t.rank == 4 else {
                throw ModelError.notRecognised(
                    source, "\(key) has shape \(describe(t.shape)), expected [in, out, 4, 4]")
            }
            return t.shape
        }
        let first = try shape("main.0.weight")
        var widths: [Int] = []
        for i in 0..<4 { widths.append(try shape("main.\(3 * i).weight")[1]) }
        let channels = try shape("main.12.weight")[1]
        let g = DCGANGenerator(latentWidth: first[0], widths: widths, imageChannels: channels)
        try g.load(state, source: source)
        g.setTrainable(false)
        return g
    }

    /// Reads a DCGAN checkpoint: the `netG_state_dict` entry of `gan-face-generate`'s
    /// `weights.tar` (a torch zip), or a file that is itself the state dict.
    public static func load(contentsOf url: URL) throws -> DCGANGenerator {
        let file = try TorchCheckpoint(contentsOf: url)
        let name = url.lastPathComponent
        let top = file.root.dict
        if top?["netG_state_dict"] != nil {
            return try load(
                file.stateDict("netG_state_dict").tensors,
                source: "\(name) entry 'netG_state_dict'")
        }
        if top?["main.0.weight"] != nil {
            return try load(file.stateDict().tensors, source: name)
        }
        let have = top?.stringKeys.prefix(12).joined(separator: ", ") ?? file.root.kindName
        throw ModelError.notRecognised(
            name, "no 'netG_state_dict' entry and not a DCGAN state dict (top level: \(have))")
    }
}
