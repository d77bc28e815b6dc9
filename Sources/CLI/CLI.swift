import TensorCore
public enum CLI {
    public static func main(_ arguments: [String]) -> Int32 { 0 }
}
