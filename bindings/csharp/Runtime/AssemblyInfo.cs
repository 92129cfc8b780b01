// The Mono test suite (tests/csharp) reads a few internal counters (native clients alive,
// finalizers run) to prove the finalizer path; nothing else is exposed.
using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("TetherTests")]
