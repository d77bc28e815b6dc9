import Foundation
import Layers
import TensorCore

// The implicit style function (ISF) of ISF-GAN: the authors' `MappingNetwork`
// (stylegan-mmuit, styleganv2/core/model.py), key for key, so that their
// `NNNNNN_nets_ema.ckpt` files load as they are. See docs/spec "The ISF network".

/// How the ISF folds its style `h` into the source code `x`.
public enum ISFNormType: String, Codable, Sendable, CaseIterable {
    /// `(1 + γ(h)) · LayerNorm(x) + β(h)`, with an affine LayerNorm (the released models).
    case adaln
    /// The same with a parameter-free instance norm of each code row.
    case adain
    /// `h + x`: no AdaIN module at all.
    case none
}

/// What one source code is: a W+ code with one row per generator layer, or a single code.
public enum ISFLatentType: String, Codable, Sendable, CaseIterable {
    /// Codes [B, layers, C]; one branch per row.
    case wp
    /// Codes [B, C]; one branch, its output squeezed to [B, C].
    case w
}

/// Settings of an ISF network. Every one but `residual` (and the split of the trunk's
/// input into random width and attributes) can be read off a checkpoint's keys and
/// shapes; see ``infer(from:source:randomWidth:residual:latentType:)``.
///
/// The official code fixes `innerWidth` = `codeWidth` = 512. isfgan lets the code width
/// C differ (for generators whose codes are not 512 wide): the trunk and the branches stay
/// `innerWidth` wide, AdaLN's LayerNorm is over C and its `fc` maps innerWidth → 2C, and
/// the output MLP is C → C at every Linear.
public struct ISFConfig: Equatable, Codable, Sendable, CustomStringConvertible {
    /// Branches (`w_net.z_net.unshared.N`): W+ rows for `wp`, 1 for `w`.
    public var layers: Int
    /// Width of the random style vector z (`rnd_dim`, 64 in the official runs).
    public var randomWidth: Int
    /// Number of attributes in the target vector d (`num_domains`).
    public var attributes: Int
    /// Width C of each code row (`latent_dim`).
    public var codeWidth: Int
    /// Width of the trunk and branches (512 in the official code).
    public var innerWidth: Int
    /// LayerNorm before each Linear (`pre_norm = 1`) rather than after each ReLU.
    public var preNorm: Bool
    public var normType: ISFNormType
    /// Adds the source code to the output (`use_residual`; leaves no trace in the keys).
    public var residual: Bool
    public var latentType: ISFLatentType

    /// The official random width (`rnd_dim` in train_mmuit.py).
    public static let officialRandomWidth = 64
    /// The official inner (and code) width.
    public static let officialInnerWidth = 512

    /// A config; call ``validate()`` before building a network from user-given values.
    public init(
        layers: Int, randomWidth: Int = officialRandomWidth, attributes: Int,
        codeWidth: Int = officialInnerWidth, innerWidth: Int = officialInnerWidth,
        preNorm: Bool = true, normType: ISFNormType = .adaln, residual: Bool = false,
        latentType: ISFLatentType = .wp
    ) {
        self.layers = layers
        self.randomWidth = randomWidth
        self.attributes = attributes
        self.codeWidth = codeWidth
        self.innerWidth = innerWidth
        self.preNorm = preNorm
        self.normType = normType
        self.residual = residual
        self.latentType = latentType
    }

    /// The official names, as train_mmuit.py spells its options.
    enum CodingKeys: String, CodingKey {
        case layers = "num_layers"
        case randomWidth = "rnd_dim"
        case attributes = "num_domains"
        case codeWidth = "latent_dim"
        case innerWidth = "inner_dim"
        case preNorm = "pre_norm"
        case normType = "norm_type"
        case residual = "use_residual"
        case latentType = "latent_type"
    }

    /// Decodes and validates; `inner_dim` defaults to 512 and `use_residual` to false.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            layers: try c.decode(Int.self, forKey: .layers),
            randomWidth: try c.decode(Int.self, forKey: .randomWidth),
            attributes: try c.decode(Int.self, forKey: .attributes),
            codeWidth: try c.decode(Int.self, forKey: .codeWidth),
            innerWidth: try c.decodeIfPresent(Int.self, forKey: .innerWidth)
                ?? ISFConfig.officialInnerWidth,
            preNorm: try c.decode(Bool.self, forKey: .preNorm),
            normType: try c.decode(ISFNormType.self, forKey: .normType),
            residual: try c.decodeIfPresent(Bool.self, forKey: .residual) ?? false,
            latentType: try c.decode(ISFLatentType.self, forKey: .latentType))
        do {
            try validate()
        } catch {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    /// Throws when the settings cannot make a network.
    public func validate() throws {
        var problems: [String] = []
        for (name, value) in [
            ("layers", layers), ("random width", randomWidth), ("attributes", attributes),
            ("code width", codeWidth), ("inner width", innerWidth),
        ] where value < 1 {
            problems.append("\(name) is \(value), must be at least 1")
        }
        if latentType == .w && layers != 1 {
            problems.append("latent type w has one branch, not \(layers)")
        }
        if normType == .none && codeWidth != innerWidth {
            // `h + x` adds the innerWidth-wide style to the C-wide code.
            problems.append(
                "norm type none adds the style to the code, so code width \(codeWidth) "
                    + "must equal inner width \(innerWidth)")
        }
        if !problems.isEmpty {
            throw ModelError.badInput("ISF config: " + problems.joined(separator: "; "))
        }
    }

    /// Shape of a batch of `batch` source codes: [B, layers, C] (wp) or [B, C] (w).
    public func codeShape(batch: Int) -> [Int] {
        latentType == .wp ? [batch, layers, codeWidth] : [batch, codeWidth]
    }

    public var description: String {
        "ISF \(latentType.rawValue) (\(layers) branch\(layers == 1 ? "" : "es")), "
            + "z \(randomWidth), \(attributes) attributes, code \(codeWidth), "
            + "inner \(innerWidth), \(normType.rawValue), pre-norm \(preNorm ? "on" : "off")"
            + (residual ? ", residual" : "")
    }
}

// MARK: - Inference from keys

extension ISFConfig {
    /// Reads the settings off an ISF state dict (the `mapnet` entry of an official
    /// checkpoint, keys `w_net.…`).
    ///
    /// - layers: the count of `w_net.z_net.unshared.N` branches;
    /// - inner width and random width + attributes: `w_net.z_net.shared.0.weight`
    ///   [inner, rnd + D];
    /// - pre-norm: `w_net.fc.0` is a LayerNorm (1-D weight) with pre-norm, a Linear without,
    ///   and `w_net.z_net.shared.10` exists only without;
    /// - norm type: `w_net.adain.norm.*` → adaln; `w_net.adain.fc.*` alone → adain; no
    ///   `w_net.adain.*` → none;
    /// - code width: the output rows of the last Linear of `w_net.fc`.
    ///
    /// The keys hold only the sum of the random width and the number of attributes, so
    /// the random width is taken as given, 64 (the official `rnd_dim`) by default. Nor
    /// can keys show `residual`; it is taken as given. One branch means latent type `w`
    /// unless `latentType` says `wp`.
    ///
    /// The config is only as good as these keys: load the state dict strictly into an
    /// ``ISFNetwork`` built from it to check every other key and shape.
    ///
    /// - Throws: `ModelError.notRecognised` naming `source` and the key that does not fit.
    public static func infer(
        from state: [String: Tensor], source: String,
        randomWidth: Int = officialRandomWidth, residual: Bool = false,
        latentType: ISFLatentType? = nil
    ) throws -> ISFConfig {
        func fail(_ why: String) -> ModelError { .notRecognised(source, why) }
        func shape(_ key: String) -> [Int]? { state[key]?.shape }

        let trunkKey = "w_net.z_net.shared.0.weight"
        guard let trunk = shape(trunkKey) else {
            let prefixes = Set(
                state.keys.map { $0.split(separator: ".").first.map(String.init) ?? $0 })
            let hint =
                prefixes.contains("mapnet")
                ? " (the keys start with 'mapnet.': pass the checkpoint's mapnet entry)"
                : prefixes.contains("module")
                    ? " (the keys start with 'module.': strip the DistributedDataParallel prefix)"
                    : ""
            throw fail("no key '\(trunkKey)': not an ISF (MappingNetwork) state dict\(hint)")
        }
        guard trunk.count == 2 else {
            throw fail("'\(trunkKey)' has shape \(describe(trunk)), expected [inner, rnd + D]")
        }
        let inner = trunk[0]
        let attributes = trunk[1] - randomWidth
        guard attributes >= 1 else {
            throw fail(
                "'\(trunkKey)' has shape \(describe(trunk)): \(trunk[1]) inputs leave no room "
                    + "for attributes after the random width \(randomWidth)")
        }

        var layers = 0
        while state["w_net.z_net.unshared.\(layers).0.weight"] != nil { layers += 1 }
        guard layers >= 1 else {
            throw fail("no branch 'w_net.z_net.unshared.0.0.weight': not an ISF state dict")
        }

        // Where the LayerNorms sit: the first entry of fc, and the trunk's last index.
        guard let fc0 = shape("w_net.fc.0.weight") else {
            throw fail("no key 'w_net.fc.0.weight': not an ISF state dict")
        }
        let preNorm: Bool
        switch fc0.count {
        case 1: preNorm = true
        case 2: preNorm = false
        default:
            throw fail("'w_net.fc.0.weight' has shape \(describe(fc0)), expected 1-D or 2-D")
        }
        let trunkHasTail = state["w_net.z_net.shared.10.weight"] != nil
        if trunkHasTail == preNorm {
            throw fail(
                "w_net.fc says pre-norm \(preNorm ? "on" : "off") but w_net.z_net.shared "
                    + (trunkHasTail ? "has" : "lacks")
                    + " a LayerNorm at index 10: mixed layouts")
        }

        let normType: ISFNormType
        let hasNorm = state["w_net.adain.norm.weight"] != nil
        let hasFc = state["w_net.adain.fc.weight"] != nil
        switch (hasNorm, hasFc) {
        case (true, true): normType = .adaln
        case (false, true): normType = .adain
        case (false, false): normType = .none
        case (true, false):
            throw fail("'w_net.adain.norm.weight' without 'w_net.adain.fc.weight'")
        }

        let lastKey = preNorm ? "w_net.fc.7.weight" : "w_net.fc.6.weight"
        guard let last = shape(lastKey), last.count == 2 else {
            throw fail(
                "'\(lastKey)' is \(shape(lastKey).map(describe) ?? "missing"), expected the "
                    + "output Linear [C, C] of a pre-norm-\(preNorm ? "on" : "off") w_net.fc")
        }

        let type = latentType ?? (layers == 1 ? .w : .wp)
        let config = ISFConfig(
            layers: layers, randomWidth: randomWidth, attributes: attributes,
            codeWidth: last[0], innerWidth: inner, preNorm: preNorm, normType: normType,
            residual: residual, latentType: type)
        do {
            try config.validate()
        } catch let error as ModelError {
            throw fail("\(error)")
        }
        return config
    }
}

// MARK: - Layers

/// An `nn.Sequential` of Linear, LayerNorm and ReLU. Every entry takes an index, as in
/// PyTorch, so a ReLU shifts the keys of what follows without owning any.
final class ISFSequential: Module {
    enum Step {
        case linear(Linear)
        case layerNorm(LayerNorm)
        case relu
    }

    let steps: [Step]

    init(_ steps: [Step]) {
        self.steps = steps
        super.init()
        for (i, step) in steps.enumerated() {
            switch step {
            case .linear(let m): register("\(i)", m)
            case .layerNorm(let m): register("\(i)", m)
            case .relu: break
            }
        }
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for step in steps {
            switch step {
            case .linear(let m): h = m(h)
            case .layerNorm(let m): h = m(h)
            case .relu: h = h.relu()
            }
        }
        return h
    }

    /// The trunk `z_net.shared`: Linear(rnd + D, inner), ReLU, then three blocks of
    /// [LayerNorm, Linear, ReLU] (pre-norm) or [Linear, ReLU, LayerNorm].
    static func trunk(inputs: Int, width: Int, preNorm: Bool) -> ISFSequential {
        var steps: [Step] = [.linear(Linear(inputs, width)), .relu]
        for _ in 0..<3 {
            let norm = Step.layerNorm(LayerNorm(width))
            let block: [Step] = [.linear(Linear(width, width)), .relu]
            steps += preNorm ? [norm] + block : block + [norm]
        }
        return ISFSequential(steps)
    }

    /// One branch `z_net.unshared.N`: Linear, ReLU, Linear, ReLU, Linear, all inner wide.
    static func branch(width: Int) -> ISFSequential {
        ISFSequential([
            .linear(Linear(width, width)), .relu,
            .linear(Linear(width, width)), .relu,
            .linear(Linear(width, width)),
        ])
    }

    /// The output MLP `w_net.fc`, C → C: [LN, Linear, ReLU, LN, Linear, ReLU, LN, Linear]
    /// (pre-norm) or [Linear, ReLU, LN, Linear, ReLU, LN, Linear].
    static func outputMLP(width c: Int, preNorm: Bool) -> ISFSequential {
        func norm() -> Step { .layerNorm(LayerNorm(c)) }
        func linear() -> Step { .linear(Linear(c, c)) }
        if preNorm {
            return ISFSequential([
                norm(), linear(), .relu, norm(), linear(), .relu, norm(), linear(),
            ])
        }
        return ISFSequential([linear(), .relu, norm(), linear(), .relu, norm(), linear()])
    }
}

/// The official `AdaIN` module (AdaLN for norm type adaln): `(1 + γ) · norm(x) + β` with
/// `(γ, β)` = the two halves of `fc(h)`.
final class ISFAdaptiveNorm: Module {
    /// The affine LayerNorm over C (adaln); nil for the parameter-free instance norm.
    let norm: LayerNorm?
    let fc: Linear  // inner → 2C

    init(styleWidth: Int, codeWidth: Int, affineNorm: Bool) {
        norm = affineNorm ? LayerNorm(codeWidth) : nil
        fc = Linear(styleWidth, 2 * codeWidth)
        super.init()
        if let norm { register("norm", norm) }
        register("fc", fc)
    }

    /// The normalised code: LayerNorm, or `nn.InstanceNorm1d` (no affine), which on
    /// [B, L, C] and on unbatched [B, C] alike standardises each code row over C.
    func normalize(_ x: Tensor) -> Tensor {
        if let norm { return norm(x) }
        return x.instanceNorm1d()
    }

    /// x [..., C], h [..., inner] → [..., C].
    func callAsFunction(_ x: Tensor, _ h: Tensor) -> Tensor {
        let gb = fc(h).chunk(2, axis: h.rank - 1)  // 2 × [..., C]
        return (gb[0] + 1) * normalize(x) + gb[1]
    }
}

// MARK: - Network

/// The implicit style function F(w, z, d) of ISF-GAN: a new code for source code w, random
/// style z and target attributes d (the authors' `MappingNetwork`, checkpoint key `mapnet`).
///
/// ```
/// t  = shared(concat(z, d))                 // trunk, [B, inner]
/// h  = stack(unshared[l](t) for each l)     // [B, L, inner]; [B, inner] for a single code
/// a  = (1 + γ(h)) · norm(w) + β(h)          // adaln / adain; a = h + w for none
/// w' = fc(a)  (+ w when residual)           // [B, L, C] or [B, C]
/// ```
///
/// Parameters sit under the official keys (`w_net.z_net.shared.0.weight`, …), so
/// ``Layers/Module/load(_:prefix:source:)`` and ``Layers/Module/stateDict(prefix:)``
/// read and write the official layout.
public final class ISFNetwork: Module {
    /// The settings the network was built with.
    public let config: ISFConfig
    let trunkNet: ISFSequential
    let branches: [ISFSequential]
    let adaptiveNorm: ISFAdaptiveNorm?
    let outputNet: ISFSequential

    /// Every intermediate of one forward pass, named as the reference fixtures name them.
    public struct Stages {
        /// `w_net.z_net.shared(cat(z, d))`: [B, inner] (`znet_shared`).
        public var trunk: Tensor
        /// `w_net.z_net(z, d)`: [B, L, inner], or [B, inner] for a single code (`znet_out`).
        public var styles: Tensor
        /// The normalised code before the style's affine (`adain_norm`); nil for none.
        public var normalizedCodes: Tensor?
        /// What enters `w_net.fc`: AdaLN/AdaIN output (`adain_out`) or styles + codes
        /// (`znet_plus_lat`).
        public var combined: Tensor
        /// `w_net(w, z, d)`, before the residual (`wnet_out`).
        public var mlpOutput: Tensor
        /// The edited codes, the shape of the source codes (`out`).
        public var output: Tensor
    }

    /// A network with zero weights and identity LayerNorms; load a state dict into it or
    /// use ``init(_:generator:)`` for a trainable initialisation.
    public init(_ config: ISFConfig) {
        precondition((try? config.validate()) != nil, "ISFNetwork: invalid config \(config)")
        self.config = config
        let inner = config.innerWidth
        trunkNet = ISFSequential.trunk(
            inputs: config.randomWidth + config.attributes, width: inner, preNorm: config.preNorm)
        branches = (0..<config.layers).map { _ in ISFSequential.branch(width: inner) }
        switch config.normType {
        case .adaln, .adain:
            adaptiveNorm = ISFAdaptiveNorm(
                styleWidth: inner, codeWidth: config.codeWidth,
                affineNorm: config.normType == .adaln)
        case .none:
            adaptiveNorm = nil
        }
        outputNet = ISFSequential.outputMLP(width: config.codeWidth, preNorm: config.preNorm)
        super.init()

        let wNet = Module()
        let zNet = Module()
        zNet.register("shared", trunkNet)
        let unshared = Module()
        for (i, b) in branches.enumerated() { unshared.register("\(i)", b) }
        zNet.register("unshared", unshared)
        wNet.register("z_net", zNet)
        if let adaptiveNorm { wNet.register("adain", adaptiveNorm) }
        wNet.register("fc", outputNet)
        register("w_net", wNet)
    }

    /// A trainable network with PyTorch's default initialisation, drawn from `generator`:
    /// every Linear's weight and bias U(−1/√in, 1/√in) (`nn.Linear`'s Kaiming-uniform with
    /// a = √5), every LayerNorm weight 1 and bias 0. Parameters are drawn in key order.
    public convenience init(_ config: ISFConfig, generator: inout RandomGenerator) {
        self.init(config)
        for linear in linears(in: self) {
            let bound = 1 / Float(linear.weight.shape[1]).squareRoot()
            linear.weight.assign(generator.uniform(linear.weight.shape, low: -bound, high: bound))
            if let b = linear.bias {
                b.assign(generator.uniform(b.shape, low: -bound, high: bound))
            }
        }
    }

    /// ``init(_:generator:)`` from a fresh generator seeded with `seed`.
    public convenience init(_ config: ISFConfig, seed: UInt64) {
        var generator = RandomGenerator(seed: seed)
        self.init(config, generator: &generator)
    }

    /// Builds a network from a state dict (an official checkpoint's `mapnet` entry, or the
    /// project's own files), inferring its settings, and binds it strictly. The network
    /// comes back frozen for editing; `setTrainable(true)` makes it trainable again.
    ///
    /// - Parameters:
    ///   - randomWidth: z's width, which the keys cannot separate from the attributes.
    ///   - residual: whether the run used `--use_residual 1`, which keys cannot show.
    ///   - latentType: overrides the default (`w` for one branch, else `wp`).
    /// - Throws: `ModelError` when the keys are not an ISF's, `StateDictError` listing
    ///   every missing, unexpected and mis-shaped key.
    public static func load(
        _ state: [String: Tensor], source: String,
        randomWidth: Int = ISFConfig.officialRandomWidth, residual: Bool = false,
        latentType: ISFLatentType? = nil
    ) throws -> ISFNetwork {
        let config = try ISFConfig.infer(
            from: state, source: source, randomWidth: randomWidth, residual: residual,
            latentType: latentType)
        let net = ISFNetwork(config)
        try net.load(state, source: source)
        net.setTrainable(false)
        return net
    }

    /// Builds a network with a known config (for example the one the project's own files
    /// record, with the random width and residual flag the keys cannot show) and binds
    /// `state` strictly. The network comes back frozen, as from
    /// ``load(_:source:randomWidth:residual:latentType:)``.
    ///
    /// - Throws: `ModelError` for an invalid config, `StateDictError` listing every
    ///   missing, unexpected and mis-shaped key.
    public static func load(
        _ state: [String: Tensor], config: ISFConfig, source: String
    ) throws -> ISFNetwork {
        do {
            try config.validate()
        } catch let error as ModelError {
            throw ModelError.notRecognised(source, "\(error)")
        }
        // The config comes from metadata that anyone can edit: a wrong width could ask for
        // terabytes, so check its size against the tensors before allocating (a config of
        // the right size that still does not fit fails below, with every key listed).
        let stored = state.values.reduce(0) { $0 + $1.count }
        // Every branch holds an inner × inner Linear, the trunk an inner × (rnd + D) one and
        // the output at least an inner × C one.
        let (l, i) = (Double(config.layers), Double(config.innerWidth))
        let smallest =
            l * i * i + i * Double(config.randomWidth + config.attributes)
            + i * Double(config.codeWidth)
        if smallest > Double(2 * stored + 1_000_000) {
            throw ModelError.notRecognised(
                source,
                "the recorded config (\(config)) needs far more weights than the "
                    + "\(stored) values stored")
        }
        let net = ISFNetwork(config)
        try net.load(state, source: source)
        net.setTrainable(false)
        return net
    }

    /// Every Linear under `module`, in key order.
    /// Sets the weight and bias of the output MLP's last Linear to zero. With `residual`
    /// the network then starts as the identity (w' = w), so training begins from "change
    /// nothing" rather than from a random code (the remedy for runs that collapse into
    /// unrelated faces).
    public func zeroOutputLayer() {
        guard let last = linears(in: outputNet).last else { return }
        last.weight.assign(Tensor.zeros(last.weight.shape))
        if let b = last.bias { b.assign(Tensor.zeros(b.shape)) }
    }

    private func linears(in module: Module) -> [Linear] {
        if let linear = module as? Linear { return [linear] }
        return module.entries.flatMap { entry -> [Linear] in
            if case .module(let child) = entry.entry { return linears(in: child) }
            return []
        }
    }

    // MARK: Forward

    /// Checks the three inputs' shapes against the config.
    ///
    /// - Throws: `ModelError.badInput` naming the input, its shape and the expected one.
    public func checkInputs(codes: Tensor?, z: Tensor, targets: Tensor) throws {
        let b = z.shape.first ?? 0
        var problems: [String] = []
        if z.rank != 2 || z.shape[1] != config.randomWidth {
            problems.append("z has shape \(describe(z.shape)), expected [B, \(config.randomWidth)]")
        }
        if targets.shape != [b, config.attributes] {
            problems.append(
                "targets have shape \(describe(targets.shape)), expected "
                    + "\(describe([b, config.attributes])) (one row of \(config.attributes) "
                    + "attributes per random vector)")
        }
        if let codes, codes.shape != config.codeShape(batch: b) {
            problems.append(
                "codes have shape \(describe(codes.shape)), expected "
                    + describe(config.codeShape(batch: b)))
        }
        if !problems.isEmpty {
            throw ModelError.badInput("ISF inputs: " + problems.joined(separator: "; "))
        }
    }

    /// The trunk: z [B, rnd], targets [B, D] → [B, inner].
    public func trunk(z: Tensor, targets: Tensor) throws -> Tensor {
        try checkInputs(codes: nil, z: z, targets: targets)
        return trunkNet(Tensor.concat([z, targets], axis: 1))
    }

    /// The styles, one per branch: [B, L, inner] (wp) or [B, inner] (w).
    public func styles(z: Tensor, targets: Tensor) throws -> Tensor {
        styles(trunk: try trunk(z: z, targets: targets))
    }

    func styles(trunk t: Tensor) -> Tensor {
        let perLayer = branches.map { $0(t) }  // L × [B, inner]
        if config.latentType == .w { return perLayer[0] }
        return Tensor.stack(perLayer, axis: 1)
    }

    /// Every stage of the forward pass.
    public func stages(codes: Tensor, z: Tensor, targets: Tensor) throws -> Stages {
        try checkInputs(codes: codes, z: z, targets: targets)
        let t = trunkNet(Tensor.concat([z, targets], axis: 1))  // [B, inner]
        let h = styles(trunk: t)  // [B, L, inner] or [B, inner]
        let normalized: Tensor?
        let combined: Tensor
        if let adaptiveNorm {
            normalized = adaptiveNorm.normalize(codes)
            combined = adaptiveNorm(codes, h)
        } else {
            normalized = nil
            combined = h + codes
        }
        let mlp = outputNet(combined)
        let output = config.residual ? mlp + codes : mlp
        return Stages(
            trunk: t, styles: h, normalizedCodes: normalized, combined: combined,
            mlpOutput: mlp, output: output)
    }

    /// F(w, z, d): edited codes of the source codes' shape.
    ///
    /// - Parameters:
    ///   - codes: source codes, [B, L, C] (wp) or [B, C] (w).
    ///   - z: random style vectors, [B, rnd].
    ///   - targets: target attributes, [B, D], each 0 or 1 as trained.
    /// - Throws: `ModelError.badInput` when a shape does not fit the config.
    public func callAsFunction(codes: Tensor, z: Tensor, targets: Tensor) throws -> Tensor {
        try checkInputs(codes: codes, z: z, targets: targets)
        let h = styles(trunk: trunkNet(Tensor.concat([z, targets], axis: 1)))
        let combined = adaptiveNorm.map { $0(codes, h) } ?? h + codes
        let out = outputNet(combined)
        return config.residual ? out + codes : out
    }
}
