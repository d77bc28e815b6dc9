import TensorCore

/// How a generator's per-layer noise inputs are filled.
public enum NoiseMode {
    /// The noise buffers stored in the checkpoint: same code, same image.
    case constant
    /// Fresh normal noise from a generator seeded with this value.
    case random(seed: UInt64)
    /// No noise.
    case zero
    /// Explicit maps, one per noise layer, each [1 or N, 1, H, W].
    case explicit([Tensor])
}

/// The face every generator shows to editing, training, evaluation and projection.
///
/// Codes are always `[N, layers, width]`: W+ for StyleGAN2 (layers = n_latent), a single
/// code for generators with one input vector (layers = 1).
public protocol ImageGenerator: AnyObject {
    /// Rows of the code (n_latent for StyleGAN2's W+, 1 for single-code generators).
    var codeLayers: Int { get }
    /// Width of each code row.
    var codeWidth: Int { get }
    /// Side of the square output image.
    var imageSize: Int { get }
    /// A short description for logs ("StyleGAN2 256 px, style 512, …").
    var summary: String { get }

    /// Random codes in the editing space: `[count, codeLayers, codeWidth]`.
    func sampleCodes(count: Int, generator: inout RandomGenerator) -> Tensor

    /// Images `[N, 3, S, S]` in about [−1, 1] from codes `[N, codeLayers, codeWidth]`.
    /// Differentiable with respect to the codes when recording is on.
    func render(_ codes: Tensor, noise: NoiseMode) -> Tensor
}
