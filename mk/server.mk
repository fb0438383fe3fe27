# pi0 serve (tools/server/): the openpi-compatible websocket policy server.
#
# libwebsockets (Debian libwebsockets-dev 4.1): the WebSocket + HTTP server. It does RFC 6455
#   framing, the upgrade handshake, ping/pong, close codes with reasons, plain HTTP on the same
#   port (/healthz), port 0 with lws_get_vhost_listen_port, per-connection read pausing
#   (lws_rx_flow_control) and buffering of partial writes, all on one poll() loop that we run on
#   our own network thread. Its one documented cross-thread call, lws_cancel_service, is all the
#   worker thread needs to hand replies back. It reports each frame's declared length before the
#   payload is buffered (lws_remaining_packet_payload), so the size limit is enforced before any
#   allocation. No extension list is passed, so permessage-deflate is never negotiated. A
#   hand-written RFC 6455 layer would re-implement all of this with no gain.
# msgpack-c (Debian libmsgpack-dev 4.0, libmsgpackc): encodes the replies and the metadata map.
#   It is NOT used to decode requests: its C unpacker allocates a container's declared size
#   before checking that the bytes exist (a 5-byte frame `dd 00 ff ff ff` makes it map 512 MiB)
#   and its C API has no limits (unpack_limit is C++ only). Requests are untrusted, so
#   tools/server/msgpack_numpy.c reads them with a small zero-copy, bounds-checked cursor.
#   tests/test_msgpack.c uses msgpack-c's packer as the independent encoder of its inputs.
# python3-websockets, python3-msgpack, python3-numpy: the independent client of
#   tests/test_server.py (Debian's /usr/bin/python3).
DEBS   += libwebsockets-dev libmsgpack-dev python3-websockets python3-msgpack python3-numpy
LDLIBS += -lwebsockets -lmsgpackc

# tests/test_msgpack.c unit-tests the request decoder, which lives in tools/ (not in libpi0.a).
$(BUILD)/tests/test_msgpack: $(BUILD)/tools/server/msgpack_numpy.o
# (in LDFLAGS so that it comes before the libraries on the link line; `override` so that it survives
# an LDFLAGS=... given on the make command line, which would otherwise drop this addition)
$(BUILD)/tests/test_msgpack: override LDFLAGS += $(BUILD)/tools/server/msgpack_numpy.o
