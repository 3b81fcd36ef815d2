-- bench/post1k.lua - wrk script for the post1k case of bench/run.sh: every
-- request is a keep-alive POST with a 1024-byte body (wrk adds
-- Content-Length). The origin answers POSTs with 200 "ok\n".
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
