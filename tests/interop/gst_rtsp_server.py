"""A GStreamer gst-rtsp-server serving a PCMU tone; run with Debian's /usr/bin/python3 (GI).

Usage: gst_rtsp_server.py PORT FREQ [PATH] [--savp]
Prints ``READY <port>`` on stdout once listening on 127.0.0.1. Plain RTP/AVP (one shared media)
unless --savp: then ``GstRtsp.RTSPProfile.SAVP`` with a media per client, for which the server
generates the SRTP key itself, announces it in DESCRIBE (``a=key-mgmt:mikey``, PSK with NULL
KEMAC) and accepts the client's ``KeyMgmt`` in SETUP (logged under ``GST_DEBUG=rtspstream:5``).
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> int:
    port, freq = int(sys.argv[1]), float(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 and not sys.argv[3].startswith("--") else "/tone"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( audiotestsrc is-live=true freq={freq} ! audio/x-raw,rate=8000,channels=1 "
        "! mulawenc ! rtppcmupay name=pay0 pt=0 )"
    )
    savp = "--savp" in sys.argv
    factory.set_shared(not savp)
    factory.set_profiles(GstRtsp.RTSPProfile.SAVP if savp else GstRtsp.RTSPProfile.AVP)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP | GstRtsp.RTSPLowerTrans.TCP)
    pool = GstRtspServer.RTSPAddressPool()
    low = 40000 if savp else 30000
    pool.add_range("127.0.0.1", "127.0.0.1", low, low + 10000, 0)
    factory.set_address_pool(pool)
    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        print("FAILED to attach", flush=True)
        return 1
    print(f"READY {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
