/// A count that concurrent tasks of a test add to (how many readers hold a connection, say).
public actor Tally {
    public private(set) var value = 0

    public init() {}

    public func add() { value += 1 }
}
