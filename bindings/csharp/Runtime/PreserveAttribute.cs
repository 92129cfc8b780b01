// Unity's managed code stripping (UnityLinker, on by default with IL2CPP) keeps members marked
// with an attribute named PreserveAttribute, whatever its namespace, so the Runtime assembly
// can mark the native callbacks without referencing UnityEngine. The trampolines are also
// reachable from static fields, which keeps them by itself; this guards against a linker that
// looks only at that.
using System;

namespace Tether
{
    /// <summary>Keep this member through managed code stripping.</summary>
    [AttributeUsage(AttributeTargets.Class | AttributeTargets.Method | AttributeTargets.Field | AttributeTargets.Constructor, Inherited = false)]
    internal sealed class PreserveAttribute : Attribute
    {
    }
}
