#!/usr/bin/env python3
"""Reference for bench/stop-latency.sh: trigger → BYE latency of SIPp as the callee, with N calls up.

A raw-UDP caller in its own process (like examples/stop_latency.rs against the engine): brings
CALLS calls up at RATE/s to SIPp running bench/sipp/uas_bye_on_info.xml (INVITE with SDP, 200, ACK),
then, one at a time for STOPS calls, sends an in-dialog INFO (SIPp's trigger, where the engine's
is the operator's HTTP stop) and times INFO sent → SIPp's BYE read on the socket
(time.perf_counter_ns around a blocking socket, one thread). Answers every BYE 200, hangs up the
rest, prints the same p50/p90/p99/max line (nearest-rank) as stop_latency.

Usage: bye_reference.py HOST:PORT CALLS RATE STOPS
"""
import os
import socket
import sys
import time


def header(msg, name):
    for line in msg.split("\r\n")[1:]:
        if not line:
            break
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def pct(sorted_ms, p):
    if not sorted_ms:
        return float("nan")
    rank = int(-(-p / 100.0 * len(sorted_ms) // 1))  # ceil
    return sorted_ms[min(max(rank, 1), len(sorted_ms)) - 1]


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    peer = (host, int(port))
    calls, rate, stops = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    local = "%s:%d" % sock.getsockname()
    tag = "br%d" % os.getpid()
    to = {}  # Call-ID → To header of the 200 (with SIPp's tag)

    def send(text):
        sock.sendto(text.encode(), peer)

    def dialog_request(method, cid, cseq, branch):
        return ("%s sip:callee@%s:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s\r\n"
                "From: <sip:ref@%s>;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n"
                "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                % (method, host, port, local, branch, local, tag, to[cid], cid, cseq, method))

    def ok(msg):
        head = "".join("%s: %s\r\n" % (n, header(msg, n)) for n in ("Via", "From", "To", "Call-ID", "CSeq"))
        send("SIP/2.0 200 OK\r\n" + head + "Content-Length: 0\r\n\r\n")

    def handle(msg):
        """Returns ("bye", Call-ID) for a BYE from SIPp, else None; ACKs 200s to INVITEs."""
        cid, cseq = header(msg, "Call-ID"), header(msg, "CSeq") or ""
        if msg.startswith("SIP/2.0 200") and cseq.endswith("INVITE"):
            to[cid] = header(msg, "To")
            send(dialog_request("ACK", cid, 1, "ack-" + cid))
        elif msg.startswith("BYE "):
            ok(msg)
            return ("bye", cid)
        return None

    def drain(timeout):
        sock.settimeout(timeout)
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            return False
        return handle(data.decode(errors="replace"))

    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    start = time.monotonic()
    for i in range(calls):
        cid = "%s-%d" % (tag, i)
        send("INVITE sip:200@%s:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-inv-%s\r\n"
             "From: <sip:ref@%s>;tag=%s\r\nTo: <sip:200@%s:%s>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\n"
             "Contact: <sip:ref@%s>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n"
             "Content-Length: %d\r\n\r\n%s"
             % (host, port, local, cid, local, tag, host, port, cid, local, len(sdp), sdp))
        due = start + (i + 1) / rate
        while time.monotonic() < due:
            drain(max(due - time.monotonic(), 0.0001))
    deadline = time.monotonic() + 10
    while len(to) < calls and time.monotonic() < deadline:
        drain(0.1)
    print("setup: %d calls answered of %d in %.2f s" % (len(to), calls, time.monotonic() - start))
    while drain(0.5) is not False:  # until SIPp is quiet (its 200s ACKed)
        pass

    up, ms, missing = sorted(to), [], 0
    for cid in up[:stops]:
        t0 = time.perf_counter_ns()
        send(dialog_request("INFO", cid, 2, "info-" + cid))
        end = time.monotonic() + 5
        while True:
            got = drain(max(end - time.monotonic(), 0.0001))
            if got == ("bye", cid):
                ms.append((time.perf_counter_ns() - t0) / 1e6)
                break
            if time.monotonic() >= end:
                missing += 1
                break
    ms.sort()
    print("stops: %d with %d calls up at the start (%d without BYE)" % (len(ms), len(up), missing))
    print("info→BYE latency: n=%d p50=%.3f ms p90=%.3f ms p99=%.3f ms max=%.3f ms (min %.3f ms, mean %.3f ms)"
          % (len(ms), pct(ms, 50), pct(ms, 90), pct(ms, 99), ms[-1] if ms else float("nan"),
             ms[0] if ms else float("nan"), sum(ms) / max(len(ms), 1)))
    rest = up[stops:]
    for n, cid in enumerate(rest):
        send(dialog_request("BYE", cid, 3, "bye-%d" % n))
        time.sleep(1 / rate)
    while drain(0.5) is not False:
        pass
    print("cleanup: %d remaining calls hung up" % len(rest))


if __name__ == "__main__":
    main()
