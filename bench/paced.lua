-- wrk script: POST the JSON file named by $BODY, each connection pausing $DELAY_MS milliseconds after every
-- answer (wrk's delay() hook), so the request rate stays near connections / (service time + delay).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY"), "r"))
wrk.body = f:read("*a")
f:close()
local pause = tonumber(os.getenv("DELAY_MS") or "0")

function delay()
  return pause
end
