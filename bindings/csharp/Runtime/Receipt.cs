// A receipt: the id of one accepted message and the two Tasks that tell its fate. The Tasks
// are made only when first asked for (a send that nobody awaits costs one small object; its
// state is guarded by its client's lock, not a lock object of its own), and
// they complete on the thread that calls DispatchEvents, after the native poll call has
// returned: continuations that run synchronously never run inside native code.
using System.Collections.Generic;
using System.Threading.Tasks;

namespace Tether
{
    /// <summary>The id of an accepted message and the ways to learn its fate: <see cref="Written"/>
    /// (on the socket) and <see cref="Acked"/> (envelope mode: acknowledged by the server). Both
    /// fault with <see cref="TetherDeliveryFailedException"/> if the message fails, and complete
    /// only while you call <see cref="TetherClient.DispatchEvents(int)"/>.</summary>
    public sealed class Receipt
    {
        private readonly TetherClient client;
        private readonly bool envelope;
        private bool written, acked;
        private TetherException failure;
        private TaskCompletionSource<bool> writtenTcs, ackedTcs;

        internal Receipt(TetherClient client, ulong id, bool envelope)
        {
            this.client = client;
            Id = id;
            this.envelope = envelope;
        }

        /// <summary>The message id (1, 2, 3, ... in send order), as in the C API.</summary>
        public ulong Id { get; private set; }

        /// <summary>What this receipt has learnt so far from dispatched events.</summary>
        public DeliveryStatus State
        {
            get
            {
                lock (client.StateLock)
                {
                    if (failure != null) return DeliveryStatus.Failed;
                    if (acked) return DeliveryStatus.Acked;
                    return written ? DeliveryStatus.Written : DeliveryStatus.Queued;
                }
            }
        }

        /// <summary>Why the message failed (a TetherDeliveryFailedException, or TetherClosedException
        /// when the client was disposed first); null if it has not.</summary>
        public TetherException Failure { get { lock (client.StateLock) return failure; } }

        /// <summary>Ask the library where the message stands now (tether_client_delivery_status),
        /// without waiting for events to be dispatched.</summary>
        public DeliveryStatus QueryStatus() { return client.QueryDelivery(Id); }

        /// <summary>Completes once the message was written to the socket; faults if it fails first.</summary>
        public Task Written
        {
            get
            {
                lock (client.StateLock)
                {
                    if (writtenTcs == null)
                    {
                        writtenTcs = new TaskCompletionSource<bool>();
                        if (written) writtenTcs.SetResult(true);
                        else if (failure != null) writtenTcs.SetException(failure);
                    }
                    return writtenTcs.Task;
                }
            }
        }

        /// <summary>Completes once the server acknowledged the message (envelope mode); faults if
        /// it fails, and at once with <see cref="TetherNotSupportedException"/> in raw mode.</summary>
        public Task Acked
        {
            get
            {
                lock (client.StateLock)
                {
                    if (ackedTcs == null)
                    {
                        ackedTcs = new TaskCompletionSource<bool>();
                        if (!envelope)
                            ackedTcs.SetException(new TetherNotSupportedException(TetherStatus.NotSupported, "acks exist only in envelope mode (TetherOptions.Protocol = TetherProtocol.Envelope)"));
                        else if (acked) ackedTcs.SetResult(true);
                        else if (failure != null) ackedTcs.SetException(failure);
                    }
                    return ackedTcs.Task;
                }
            }
        }

        /// <summary>The message id.</summary>
        public override string ToString() { return "Receipt(" + Id + ", " + State + ")"; }

        // ---- transitions (called by TetherClient; the completions go to `sink`) ----

        internal void MarkWritten(List<TaskCompletion> sink)
        {
            lock (client.StateLock)
            {
                if (written || failure != null) return;
                written = true;
                if (writtenTcs != null) sink.Add(new TaskCompletion(writtenTcs, null));
            }
        }

        internal void MarkAcked(List<TaskCompletion> sink)
        {
            lock (client.StateLock)
            {
                if (acked || failure != null) return;
                if (!written && writtenTcs != null) sink.Add(new TaskCompletion(writtenTcs, null));
                written = acked = true;
                if (ackedTcs != null) sink.Add(new TaskCompletion(ackedTcs, null));
            }
        }

        internal void MarkFailed(TetherException why, List<TaskCompletion> sink)
        {
            lock (client.StateLock)
            {
                if (acked || failure != null) return;
                failure = why;
                if (!written && writtenTcs != null) sink.Add(new TaskCompletion(writtenTcs, why));
                if (ackedTcs != null && envelope) sink.Add(new TaskCompletion(ackedTcs, why));
            }
        }
    }

    /// <summary>A Task to complete (successfully, or with Error), collected while native code is
    /// on the stack and run after it returned.</summary>
    internal struct TaskCompletion
    {
        internal readonly TaskCompletionSource<bool> Tcs;
        internal readonly System.Exception Error;

        internal TaskCompletion(TaskCompletionSource<bool> tcs, System.Exception error)
        {
            Tcs = tcs;
            Error = error;
        }

        internal void Run()
        {
            if (Error == null) Tcs.TrySetResult(true);
            else Tcs.TrySetException(Error);
        }
    }
}
