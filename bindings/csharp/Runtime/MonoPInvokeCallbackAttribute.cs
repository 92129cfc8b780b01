// IL2CPP compiles a managed method into something native code can call only if the method is
// static and carries an attribute named MonoPInvokeCallbackAttribute (IL2CPP matches the name;
// Xamarin.iOS and Unity both look for it in the AOT namespace). UnityEngine ships one, but the
// Runtime assembly does not reference UnityEngine ("noEngineReferences" in its asmdef), so it
// defines its own, internal, so it can never clash with UnityEngine's in your code.
using System;

namespace AOT
{
    /// <summary>Marks a static method that native code calls through a function pointer; the
    /// type is the delegate type the pointer was made from.</summary>
    [AttributeUsage(AttributeTargets.Method)]
    [Tether.Preserve]
    internal sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        /// <summary>The delegate type of the callback.</summary>
        public Type DelegateType { get; private set; }

        /// <summary>Marks a callback of delegate type <paramref name="type"/>.</summary>
        public MonoPInvokeCallbackAttribute(Type type) { DelegateType = type; }
    }
}
