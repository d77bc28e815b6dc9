import Foundation
import Method
import Models

/// The options that name a generator, shared by every command that renders.
let generatorOptions: [OptionSpec] = [
    .value(
        "generator", "FILE",
        "a rosinality StyleGAN2 .pt, a DCGAN state dict, or 'dcgan' (the face generator "
            + "scripts/fetch-models gets)"),
    .value(
        "generator-kind", "KIND",
        "what --generator holds: " + GeneratorKind.allCases.map(\.rawValue).joined(separator: ", "),
        default: GeneratorKind.auto.rawValue),
    .value("key", "NAME", "checkpoint entry holding the generator", default: "g_ema"),
]

/// Loads the generator `generatorOptions` name, reporting what it is on standard error.
func loadGenerator(_ args: ParsedArguments, console: Console) throws
    -> (generator: any ImageGenerator, url: URL)
{
    let kind = try args.choice("generator-kind", GeneratorKind.allCases.map(\.rawValue))!
    let loaded = try GeneratorLoader.load(
        spec: try args.required("generator"), kind: GeneratorKind(rawValue: kind)!,
        key: args.string("key"), warn: console.warn)
    console.err("generator: \(loaded.generator.summary)")
    return loaded
}
