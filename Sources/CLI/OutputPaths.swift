import Foundation

/// What an output flag may name.
enum OutputKind {
    /// A folder (created if missing, with its parents).
    case folder
    /// A .png/.jpg/.jpeg image, or a folder when the name has no extension.
    case imageOrFolder
    /// A file with one of these extensions, in a folder that exists.
    case file([String])
}

/// Extensions of files that are not images isfgan writes: an output with one of them is
/// a mistake, not a folder name.
private let fileExtensions: Set<String> = [
    "bmp", "gif", "tif", "tiff", "webp", "ppm", "pgm", "heic", "npy", "npz", "safetensors",
    "json", "txt", "pt", "pth", "pkl", "ckpt",
]

/// Checks an output path before any work is done, so that a long render or fit does not
/// end in "cannot write" and a typo does not turn into a folder named `out.bmp`.
///
/// - Returns: the path as a file URL.
/// - Throws: `UsageError` naming the flag, the path and what was expected.
func checkOutput(
    _ path: String, flag: String = "out", command: String, kind: OutputKind
) throws -> URL {
    let fail = { (why: String) in UsageError("isfgan \(command): --\(flag) \(why)") }
    guard !path.trimmingCharacters(in: .whitespaces).isEmpty else {
        throw fail("is empty; give a path")
    }
    let url = URL(fileURLWithPath: path)
    var isFolder: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder)
    let ext = url.pathExtension.lowercased()
    let images = ["png", "jpg", "jpeg"]
    var isFile = false
    switch kind {
    case .folder:
        // A folder named like an output file is almost always a mistake (`--out x.png`).
        if (images.contains(ext) || fileExtensions.contains(ext))
            && !(exists && isFolder.boolValue)
        {
            throw fail("'\(path)' names a .\(ext) file; expected a folder")
        }
    case .imageOrFolder:
        if images.contains(ext) {
            isFile = true
        } else if fileExtensions.contains(ext) && !(exists && isFolder.boolValue) {
            // Other names are folders (`runs.v2`), but `out.bmp` is a format we cannot write.
            throw fail(
                "'\(path)': isfgan writes .png or .jpg images, not .\(ext); give such a file "
                    + "or a folder")
        }
    case .file(let allowed):
        guard allowed.contains(ext) else {
            throw fail(
                "'\(path)': expected a ."
                    + allowed.joined(separator: " or .") + " file")
        }
        isFile = true
    }
    if !isFile {
        if exists && !isFolder.boolValue {
            throw fail("'\(path)' is a file; expected a folder")
        }
        // A folder is created with its parents: none of them may be a file.
        if let file = CLI.fileInTheWay(of: url.path) {
            throw fail("'\(path)': \(file) is a file, not a folder")
        }
        return url
    }
    if exists && isFolder.boolValue {
        throw fail("'\(path)' is a folder; expected a file name")
    }
    let parent = url.deletingLastPathComponent()
    var parentIsFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: parent.path, isDirectory: &parentIsFolder)
    else {
        throw fail("'\(path)': the folder \(parent.path) does not exist")
    }
    guard parentIsFolder.boolValue else {
        throw fail("'\(path)': \(parent.path) is a file, not a folder")
    }
    return url
}
