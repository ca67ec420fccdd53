import Foundation
import RefinerSegmentCLI

// The tool's logic lives in RefinerSegmentCLI so that tests can drive it in-process.
let status = await RefinerSegmentTool(io: .standard).run(Array(CommandLine.arguments.dropFirst()))
exit(status)
