// swift-tools-version:6.0
// The layers of isfgan, top to bottom; each target imports only targets above it.
// See docs/ARCHITECTURE.md.
import PackageDescription

let package = Package(
    name: "isfgan",
    products: [
        .executable(name: "isfgan", targets: ["isfgan"]),
        .library(name: "TensorCore", targets: ["TensorCore"]),
    ],
    targets: [
        // C libraries from Debian (scripts/install-deps installs them).
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib"),
        .target(
            name: "CJPEGShim", path: "Sources/CJPEGShim",
            linkerSettings: [.linkedLibrary("jpeg")]),

        // Engine: tensors, kernels, autodiff, random numbers, threads.
        .target(name: "TensorCore", dependencies: ["CDNNL"]),
        // Parameters, modules, state-dict binding, optimisers, schedules.
        .target(name: "Layers", dependencies: ["TensorCore"]),
        // Files: zip, pickle, torch checkpoints, safetensors, npy/npz, PNG/JPEG.
        .target(
            name: "Formats", dependencies: ["TensorCore", "Layers", "CPNG", "CZlib", "CJPEGShim"]),
        // Networks: StyleGAN2, ISF, discriminator, LPIPS, classifiers.
        .target(
            name: "Models", dependencies: ["TensorCore", "Layers", "Formats"]),
        // What the method does with the networks: editing, training, evaluation.
        .target(
            name: "Method", dependencies: ["TensorCore", "Layers", "Formats", "Models"]),
        // Argument parsing and subcommands; the executable only calls into it.
        .target(
            name: "CLI", dependencies: ["TensorCore", "Layers", "Formats", "Models", "Method"]),
        .executableTarget(name: "isfgan", dependencies: ["CLI"]),

        .target(name: "TestSupport", dependencies: ["TensorCore", "Formats"]),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "TestSupport"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "TestSupport"]),
        .testTarget(
            name: "ModelsTests", dependencies: ["Models", "Formats", "Layers", "TestSupport"]),
        .testTarget(
            name: "MethodTests", dependencies: ["Method", "Models", "Formats", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["CLI", "Formats", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
