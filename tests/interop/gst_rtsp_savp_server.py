"""gst-rtsp-server serving a PCMU tone over RTP/SAVP with its own MIKEY keys (GStreamer 1.22).

Run with Debian's /usr/bin/python3 (GI), not the project venv:
``gst_rtsp_savp_server.py PORT FREQ [PATH]``. Listens on 127.0.0.1 only and prints
``READY <port>`` once attached. The media factory uses ``GstRtsp.RTSPProfile.SAVP``: the server
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
    path = sys.argv[3] if len(sys.argv) > 3 else "/tone"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( audiotestsrc is-live=true freq={freq} ! audio/x-raw,rate=8000,channels=1 "
        "! mulawenc ! rtppcmupay name=pay0 pt=0 )"
    )
    factory.set_shared(False)
    factory.set_profiles(GstRtsp.RTSPProfile.SAVP)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP | GstRtsp.RTSPLowerTrans.TCP)
    pool = GstRtspServer.RTSPAddressPool()
    pool.add_range("127.0.0.1", "127.0.0.1", 40000, 50000, 0)
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
