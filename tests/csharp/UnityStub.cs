// Just enough of UnityEngine for the package's samples (bindings/csharp/Samples~) and the C#
// blocks of the docs to compile and run here (FakePlayer.cs drives them). Not Unity.
using System;
using System.Collections.Generic;

namespace UnityEngine
{
    public class Object
    {
        public string name { get; set; }
    }

    public class MonoBehaviour : Object
    {
        internal readonly List<KeyValuePair<string, int>> Repeating = new List<KeyValuePair<string, int>>();

        // The stub counts frames, not seconds: every call of the repeat period is one frame.
        public void InvokeRepeating(string methodName, float time, float repeatRate)
        {
            Repeating.Add(new KeyValuePair<string, int>(methodName, 1));
        }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class SerializeField : Attribute { }

    public static class Debug
    {
        public static readonly List<string> Lines = new List<string>();
        public static void Log(object message) { Lines.Add("log: " + message); }
        public static void LogWarning(object message) { Lines.Add("warning: " + message); }
        public static void LogError(object message) { Lines.Add("error: " + message); }
        public static void LogException(Exception exception) { Lines.Add("exception: " + exception); }
        public static void LogException(Exception exception, Object context) { LogException(exception); }
    }
}
