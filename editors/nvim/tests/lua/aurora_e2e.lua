-- Headless end-to-end test of the Aurora Neovim plugin against the real server and a fake LLM
-- provider on loopback (spec/lsp.md §9.2). Run by editors/nvim/tests/run.sh:
--
--   AURORA_BIN=/path/to/aurora nvim --headless -u editors/nvim/tests/minimal_init.lua \
--     -c "lua require('aurora_e2e').run()"
--
-- Each check prints PASS/FAIL with what was expected and found; the run ends with
-- "nvim-X.Y.Z: N passed, M failed" and exits non-zero (cquit) if anything failed or it ran out of
-- time. On failure it prints the server's log, the quickfix lists, the answer buffer and what the
-- fake provider received.

local M = {}

local here = debug.getinfo(1, "S").source:sub(2)
local tests_dir = vim.fn.fnamemodify(here, ":p:h:h")
local editors_dir = vim.fn.fnamemodify(tests_dir, ":h:h")
local FIXTURE = editors_dir .. "/testing/fixture"
local FAKE_LLM = editors_dir .. "/testing/fake_llm.py"
-- Kept in step with editors/testing/fake_llm.py.
local ANSWER_SENTENCE = "The fake model found the answer in the indexed code."
local DOCSTRING = "Documented by the fake model."

-- Generous waits for conditions; nothing asserts a duration.
local WAIT_MS = 60000
local WATCHDOG_MS = 240000

local results = {}
local ctx = {}

local function out(s)
  io.stdout:write(s .. "\n")
  io.stdout:flush()
end

local function check(name, ok, expected, found)
  table.insert(results, { name = name, ok = ok and true or false })
  if ok then
    out("PASS " .. name)
  else
    out("FAIL " .. name)
    out("     expected: " .. tostring(expected))
    out("     found:    " .. (type(found) == "string" and found or vim.inspect(found)))
  end
  return ok
end

local function wait(ms, cond)
  return vim.wait(ms, cond, 50)
end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  return s
end

local function tail(text, n)
  local lines = vim.split(text or "", "\n", { plain = true })
  local first = math.max(1, #lines - n)
  return table.concat(vim.list_slice(lines, first, #lines), "\n")
end

--- A tiny HTTP/1.1 client over luv for the fake provider's control endpoints.
local function http(method, path, body)
  local payload = body and vim.json.encode(body) or ""
  local request = string.format(
    "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
    method, path, #payload, payload)
  local chunks, done = {}, false
  local tcp = vim.loop.new_tcp()
  tcp:connect("127.0.0.1", ctx.port, function(err)
    if err then
      done = true
      return
    end
    tcp:write(request)
    tcp:read_start(function(_, data)
      if data then
        table.insert(chunks, data)
      else
        tcp:close()
        done = true
      end
    end)
  end)
  wait(10000, function()
    return done
  end)
  local raw = table.concat(chunks)
  local json = raw:match("\r\n\r\n(.*)$")
  local ok, value = pcall(vim.json.decode, json or "")
  return ok and value or nil
end

local function fake_requests()
  return http("GET", "/_requests") or {}
end

local function qf(title_prefix)
  local info = vim.fn.getqflist({ title = 0, items = 0, nr = "$" })
  -- Look through the stack, newest first, for a list with this title.
  local last = vim.fn.getqflist({ nr = "$" }).nr
  for nr = last, 1, -1 do
    local l = vim.fn.getqflist({ nr = nr, title = 0, items = 0 })
    if l.title and l.title:sub(1, #title_prefix) == title_prefix then
      return l
    end
  end
  return nil, info
end

local function qf_render(list)
  if not list then
    return "(no such list)"
  end
  local lines = { "title: " .. list.title }
  for _, it in ipairs(list.items or {}) do
    table.insert(lines, string.format("  %s:%d:%d %s", vim.fn.bufname(it.bufnr), it.lnum, it.col, it.text))
  end
  return table.concat(lines, "\n")
end

local function buf_text(buf)
  if not buf or not vim.api.nvim_buf_is_valid(buf) then
    return ""
  end
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
end

local function diagnostics()
  out("\n======== diagnostics ========")
  out("server log: " .. tostring(ctx.server_log))
  out(tail(ctx.server_log and read_file(ctx.server_log) or "(none)", 80))
  out("--- Neovim LSP log: " .. vim.lsp.get_log_path())
  out(tail(read_file(vim.lsp.get_log_path()) or "(empty)", 30))
  local nr = vim.fn.getqflist({ nr = "$" }).nr
  for i = 1, nr do
    out("--- quickfix list " .. i)
    out(qf_render(vim.fn.getqflist({ nr = i, title = 0, items = 0 })))
  end
  local ok_ask, ask = pcall(require, "aurora.ask")
  if ok_ask then
    for _, a in ipairs(ask.answers) do
      out(string.format("--- answer %d (done=%s, deltas=%d, error=%s)", a.n, tostring(a.done), a.deltas, vim.inspect(a.error)))
      out(buf_text(a.bufnr))
    end
  end
  if ctx.port then
    local reqs = fake_requests()
    out(string.format("--- fake provider received %d request(s)", #reqs))
    for i, r in ipairs(reqs) do
      local body = r.body or {}
      local first = body.messages and body.messages[#body.messages] and tostring(body.messages[#body.messages].content) or ""
      out(string.format("  %d. stream=%s json=%s completed=%s disconnected=%s last message: %s", i,
        tostring(body.stream), tostring(body.response_format ~= nil), tostring(r.completed), tostring(r.disconnected),
        first:sub(1, 200):gsub("\n", " ")))
    end
  end
end

local function finish()
  local passed, failed = 0, 0
  for _, r in ipairs(results) do
    if r.ok then
      passed = passed + 1
    else
      failed = failed + 1
    end
  end
  if failed > 0 then
    diagnostics()
  end
  local v = vim.version()
  out(string.format("nvim-%d.%d.%d: %d passed, %d failed", v.major, v.minor, v.patch, passed, failed))
  if ctx.fake_job then
    pcall(vim.fn.jobstop, ctx.fake_job)
  end
  for _, c in ipairs(require("aurora.client").clients()) do
    pcall(function()
      if vim.fn.has("nvim-0.11") == 1 then
        c:stop()
      else
        c.stop()
      end
    end)
  end
  vim.wait(3000, function()
    return #require("aurora.client").clients() == 0
  end, 50)
  vim.cmd(failed > 0 and "cquit 1" or "qall!")
end

-- ---------------------------------------------------------------------------------------------

local function start_fake()
  local port_file = ctx.tmp .. "/fake-port"
  ctx.fake_job = vim.fn.jobstart({ vim.env.PYTHON or "python3", FAKE_LLM, "--port-file", port_file, "--exit-on-stdin-eof" }, {
    on_stderr = function(_, data)
      for _, l in ipairs(data) do
        if l ~= "" then
          out("fake_llm: " .. l)
        end
      end
    end,
  })
  local ok = wait(20000, function()
    local s = read_file(port_file)
    ctx.port = s and tonumber(s)
    return ctx.port ~= nil
  end)
  return check("fake LLM provider starts on loopback", ok and ctx.fake_job > 0, "a port in " .. port_file, ctx.port)
end

local function setup_workspace()
  ctx.root = ctx.tmp .. "/ws"
  vim.fn.mkdir(ctx.root, "p")
  vim.fn.system({ "cp", "-R", FIXTURE .. "/.", ctx.root })
  ctx.root = vim.loop.fs_realpath(ctx.root)
  ctx.server_log = ctx.tmp .. "/aurora-server.log"
  vim.env.AURORA_SERVER_LOG = ctx.server_log
  vim.env.AURORA_LOG = "aurora=debug"
  -- The server reads the key from the variable named by llm.apiKeyEnv; the fake ignores it.
  vim.env.AURORA_TEST_KEY = "fake-key-for-tests"
  -- The server's own user config file must not come from the developer's home.
  vim.env.XDG_CONFIG_HOME = ctx.tmp .. "/xdg-config"
  require("aurora").setup({
    cmd = { tests_dir .. "/aurora-logged", "lsp" },
    settings = {
      aurora = {
        llm = {
          provider = "openai",
          baseUrl = string.format("http://127.0.0.1:%d/v1", ctx.port),
          model = "fake",
          apiKeyEnv = "AURORA_TEST_KEY",
        },
      },
    },
  })
end

local function open(rel)
  local path = ctx.root .. "/" .. rel
  local bufnr = vim.fn.bufnr(path)
  if bufnr ~= -1 and vim.api.nvim_buf_is_loaded(bufnr) then
    -- Switch without `:edit`, which would reload the file (a didClose/didOpen pair).
    vim.cmd("buffer " .. bufnr)
  else
    vim.cmd("edit " .. vim.fn.fnameescape(path))
  end
  return vim.api.nvim_get_current_buf()
end

local function attached_client(buf)
  local client_mod = require("aurora.client")
  local c, attached = client_mod.client_for(buf)
  if c and attached and c.initialized ~= false then
    return c
  end
  return nil
end

local function wait_indexed(client)
  local status_mod = require("aurora.status")
  local last, done = nil, false
  local function poll()
    local pending = true
    status_mod.fetch(client, function(err, result)
      pending = false
      last = err or result
      if result and result.folders and #result.folders > 0 then
        local all_ready = true
        for _, f in ipairs(result.folders) do
          all_ready = all_ready and f.state == "ready"
        end
        done = all_ready
      end
    end)
    wait(5000, function()
      return not pending
    end)
  end
  wait(WAIT_MS, function()
    poll()
    return done
  end)
  return done, last
end

local function test_attach_and_index()
  local buf = open("app/main.py")
  local client
  local ok = wait(WAIT_MS, function()
    client = attached_client(buf)
    return client ~= nil and client.server_capabilities ~= nil
  end)
  if not check("server starts and attaches to a Python buffer", ok, "an Aurora client attached to app/main.py", #require("aurora.client").clients() .. " Aurora client(s) running, none attached") then
    return nil
  end
  ctx.client = client
  local enc = require("aurora.client").encoding(client)
  check("position encoding negotiated", enc == (vim.fn.has("nvim-0.11") == 1 and "utf-8" or "utf-16"),
    vim.fn.has("nvim-0.11") == 1 and "utf-8" or "utf-16", enc)
  local ready, last = wait_indexed(client)
  check("indexing finishes (aurora/status folders ready)", ready, "every folder state 'ready'", last)
  local status_ok = wait(10000, function()
    return require("aurora").statusline() == "Aurora ✓"
  end)
  check("aurora/didChangeStatus reaches the statusline ('Aurora ✓' once ready)", status_ok,
    "Aurora ✓ from a didChangeStatus {state = 'ready'}",
    require("aurora").statusline() .. " " .. vim.inspect(require("aurora").status()))
  return client
end

local function test_search()
  vim.cmd("AuroraSearch load_config")
  local list
  local ok = wait(WAIT_MS, function()
    list = qf("Aurora: load_config")
    return list ~= nil
  end)
  if not check(":AuroraSearch fills a quickfix list titled 'Aurora: load_config'", ok, "the list", qf_render(list)) then
    return
  end
  local hit
  for _, it in ipairs(list.items) do
    if vim.fn.bufname(it.bufnr):match("app/config%.py$") and it.text:match("load_config") then
      hit = it
      break
    end
  end
  check(":AuroraSearch finds load_config at app/config.py:18", hit and hit.lnum == 18 and hit.col == 5,
    "an item app/config.py line 18 col 5 'function load_config (score)'", qf_render(list))
  check(":AuroraSearch item text is 'kind qualifiedName (score)'",
    hit and hit.text:match("^function load_config %(%d%.%d%d%)$") ~= nil, "function load_config (0.xx)", hit and hit.text)
  check(":AuroraSearch opens the quickfix window", vim.fn.getqflist({ winid = 0 }).winid ~= 0, "a quickfix window", "none")
  vim.cmd("cclose")
end

local function test_ask()
  local ask = require("aurora.ask")
  open("app/main.py")
  vim.api.nvim_win_set_cursor(0, { 10, 4 })
  local before = #ask.answers
  vim.cmd("AuroraAsk Where is the configuration loaded?")
  local answer = ask.answers[before + 1]
  if not check(":AuroraAsk opens an answer view", answer and vim.api.nvim_buf_get_name(answer.bufnr):match("aurora://answer/%d+$"),
    "a buffer aurora://answer/N", answer and vim.api.nvim_buf_get_name(answer.bufnr)) then
    return
  end
  check("answer buffer is a scratch markdown buffer",
    vim.bo[answer.bufnr].buftype == "nofile" and vim.bo[answer.bufnr].filetype == "markdown" and not vim.bo[answer.bufnr].swapfile,
    "buftype=nofile filetype=markdown noswapfile",
    string.format("buftype=%s filetype=%s", vim.bo[answer.bufnr].buftype, vim.bo[answer.bufnr].filetype))
  local done = wait(WAIT_MS, function()
    return answer.done
  end)
  if not check("aurora/ask answers", done and not answer.error, "a result", answer.error or "no answer within 60 s") then
    return
  end
  check("the answer streamed (partial results arrived before the result)", answer.deltas > 0,
    "at least one $/progress partial value", answer.deltas)
  local text = buf_text(answer.bufnr)
  check("answer buffer starts with '# <question>'", text:sub(1, 35) == "# Where is the configuration loaded",
    "# Where is the configuration loaded?", text:sub(1, 60))
  check("answer buffer holds the model's answer", text:find(ANSWER_SENTENCE, 1, true) ~= nil, ANSWER_SENTENCE, text)
  -- The cursor's chunk (app/main.py) is pinned first; the configuration loader must be among the sources.
  check("answer buffer lists Sources", text:match("\n## Sources\n") ~= nil and text:match("\n%d+%. app/config%.py:%d+%-%d+ ") ~= nil,
    "'## Sources' then '1. app/config.py:L-E name'", text)
  check("answer buffer ends with a footer", text:match("confidence %d%.%d%d · %d+%.%d s · %$%d+%.%d+") ~= nil,
    "complexity · confidence · seconds · $cost", text)
  local list = qf("Aurora citations")
  local cites_config = false
  for _, it in ipairs(list and list.items or {}) do
    if vim.fn.bufname(it.bufnr):match("app/config%.py$") then
      cites_config = true
    end
  end
  check("citations go to the 'Aurora citations' quickfix list with app/config.py", cites_config, "an item in app/config.py", qf_render(list))
  -- <CR> on the first Sources line opens the cited file.
  if answer.sources_line and vim.api.nvim_win_is_valid(answer.win) then
    vim.api.nvim_set_current_win(answer.win)
    vim.api.nvim_win_set_cursor(answer.win, { answer.sources_line, 0 })
    vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<CR>", true, false, true), "x", false)
    local c = answer.result.citations[1]
    check("<CR> on a Sources line opens the citation", vim.api.nvim_buf_get_name(0) == vim.uri_to_fname(c.uri)
      and vim.api.nvim_win_get_cursor(0)[1] == c.range.start.line + 1,
      vim.uri_to_fname(c.uri) .. ":" .. (c.range.start.line + 1),
      vim.api.nvim_buf_get_name(0) .. ":" .. vim.api.nvim_win_get_cursor(0)[1])
  else
    check("<CR> on a Sources line opens the citation", false, "a Sources line in an open answer window", text)
  end
end

local function test_ask_selection()
  local ask = require("aurora.ask")
  local buf = open("app/config.py")
  local before = #ask.answers
  -- Lines 25-27 (apply_env_overrides' first lines), linewise.
  vim.cmd("25,27AuroraAskSelection What does this check?")
  local answer = ask.answers[before + 1]
  local done = answer and wait(WAIT_MS, function()
    return answer.done
  end)
  local r = answer and answer.params.range
  check(":AuroraAskSelection sends the range with the document",
    r and r.start.line == 24 and r.start.character == 0 and r["end"].line == 26
      and answer.params.textDocument.uri == vim.uri_from_bufnr(buf),
    "textDocument app/config.py, range 24:0-26:end", answer and answer.params)
  check(":AuroraAskSelection answers", done and not answer.error and buf_text(answer.bufnr):find(ANSWER_SENTENCE, 1, true) ~= nil,
    ANSWER_SENTENCE, answer and (answer.error or buf_text(answer.bufnr)))
end

local function test_cancel()
  local ask = require("aurora.ask")
  http("POST", "/_control", { chunkDelayMs = 400 })
  local seen = #fake_requests()
  open("app/server.py")
  local before = #ask.answers
  vim.cmd("AuroraAsk How does the server loop stop? Explain slowly.")
  local answer = ask.answers[before + 1]
  local streaming = answer and wait(WAIT_MS, function()
    return answer.deltas > 0 or answer.done
  end)
  if not check("a slow answer starts streaming", streaming and not answer.done, "partial text while the provider is slow",
    answer and (answer.error or buf_text(answer.bufnr))) then
    http("POST", "/_control", { chunkDelayMs = 20 })
    return
  end
  vim.api.nvim_set_current_win(answer.win)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<C-c>", true, false, true), "x", false)
  local ended = wait(WAIT_MS, function()
    return answer.done
  end)
  check("<C-c> in the answer view cancels the request (RequestCancelled)", ended and answer.cancelled,
    "error code -32800", answer.error or "no response")
  check("the answer view says Cancelled.", buf_text(answer.bufnr):find("**Cancelled.**", 1, true) ~= nil, "**Cancelled.**", buf_text(answer.bufnr))
  local closed = wait(WAIT_MS, function()
    local reqs = fake_requests()
    for i = seen + 1, #reqs do
      if reqs[i].disconnected then
        return true
      end
    end
    return false
  end)
  check("cancelling closes the provider's stream", closed, "a streamed request the server abandoned", #fake_requests() - seen .. " new request(s), none disconnected")
  http("POST", "/_control", { chunkDelayMs = 20 })
end

local function test_code_action()
  local buf = open("app/config.py")
  local def_line = vim.api.nvim_buf_get_lines(buf, 17, 18, false)[1]
  if not check("fixture: load_config is on line 18", def_line == "def load_config(path: Path) -> Config:", "def load_config(...)", def_line) then
    return
  end
  vim.api.nvim_win_set_cursor(0, { 19, 8 })
  local offered, chosen = {}, nil
  local original = vim.ui.select
  vim.ui.select = function(items, opts, on_choice)
    for _, item in ipairs(items) do
      local title = opts.format_item and opts.format_item(item) or tostring(item)
      table.insert(offered, title)
      if not chosen and title:find("Add docstring", 1, true) then
        chosen = item
      end
    end
    on_choice(chosen)
  end
  local edits = require("aurora.edits")
  local runs = #edits.runs
  local before_tick = vim.api.nvim_buf_get_changedtick(buf)
  vim.lsp.buf.code_action()
  local got = wait(WAIT_MS, function()
    return #offered > 0
  end)
  vim.ui.select = original
  if not check("vim.lsp.buf.code_action() offers 'Add docstring' for load_config", got and chosen ~= nil,
    "an action titled 'Aurora: Add docstring to `load_config`'", offered) then
    return
  end
  local edited = wait(WAIT_MS, function()
    local run = edits.runs[runs + 1]
    return (run and run.done) or vim.api.nvim_buf_get_changedtick(buf) ~= before_tick
      and table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n"):find(DOCSTRING, 1, true) ~= nil
  end)
  local run = edits.runs[runs + 1]
  wait(5000, function()
    return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n"):find(DOCSTRING, 1, true) ~= nil
  end)
  local lines = vim.api.nvim_buf_get_lines(buf, 16, 21, false)
  check("the code action edits the buffer: a docstring under def load_config",
    edited and lines[2] == "def load_config(path: Path) -> Config:" and lines[3] == '    """' .. DOCSTRING .. '"""',
    'line 19: """' .. DOCSTRING .. '"""',
    table.concat(lines, "\n") .. (run and run.err and ("\nerror: " .. vim.inspect(run.err)) or ""))
end

local function test_explain_action()
  local ask = require("aurora.ask")
  local buf = open("app/config.py")
  vim.api.nvim_win_set_cursor(0, { 26, 8 })
  local offered, chosen = {}, nil
  local original = vim.ui.select
  vim.ui.select = function(items, opts, on_choice)
    for _, item in ipairs(items) do
      local title = opts.format_item and opts.format_item(item) or tostring(item)
      table.insert(offered, title)
      if not chosen and title:find("Explain", 1, true) then
        chosen = item
      end
    end
    on_choice(chosen)
  end
  local before = #ask.answers
  vim.lsp.buf.code_action()
  wait(WAIT_MS, function()
    return #offered > 0
  end)
  vim.ui.select = original
  local answer = ask.answers[before + 1]
  if not check("the Explain code action streams into the answer view (vim.lsp.commands['aurora.explain'])",
    chosen ~= nil and answer ~= nil and answer.params.textDocument.uri == vim.uri_from_bufnr(buf) and answer.params.range ~= nil
      and answer.params.partialResultToken ~= nil,
    "an aurora/ask with the action's document, range and a partialResultToken", { offered = offered, params = answer and answer.params }) then
    return
  end
  local done = wait(WAIT_MS, function()
    return answer.done
  end)
  check("the Explain answer arrives", done and not answer.error and buf_text(answer.bufnr):find(ANSWER_SENTENCE, 1, true) ~= nil,
    ANSWER_SENTENCE, answer.error or buf_text(answer.bufnr))
end

local function test_reindex()
  local before = #ctx.notes
  vim.cmd("AuroraReindex")
  local found
  local ok = wait(WAIT_MS, function()
    for i = before + 1, #ctx.notes do
      if ctx.notes[i]:match("^aurora: reindex") then
        found = ctx.notes[i]
        return true
      end
    end
    return false
  end)
  check(":AuroraReindex runs aurora.reindex and reports the summary",
    ok and found:match("^aurora: reindexed %d+ files %(%d+ unchanged, %d+ removed%), %d+ chunks$") ~= nil,
    "aurora: reindexed N files (N unchanged, N removed), N chunks", found)
end

local function test_health()
  vim.cmd("checkhealth aurora")
  local text = buf_text(vim.api.nvim_get_current_buf())
  check(":checkhealth aurora reports the binary", text:find("found " .. tests_dir .. "/aurora-logged", 1, true) ~= nil
    and text:match("version: aurora %d+%.%d+%.%d+") ~= nil, "found <binary> and 'version: aurora X.Y.Z'", text)
  check(":checkhealth aurora reports the server state", text:find("protocol 1, state ", 1, true) ~= nil, "server ..., protocol 1, state ...", text)
  check(":checkhealth aurora reports the LLM provider", text:find("provider: openai, model: fake", 1, true) ~= nil,
    "provider: openai, model: fake", text)
end

function M.run()
  local v = vim.version()
  out(string.format("Aurora Neovim end-to-end test on Neovim %d.%d.%d", v.major, v.minor, v.patch))
  ctx.tmp = vim.env.AURORA_E2E_TMP or vim.fn.tempname()
  if vim.env.AURORA_E2E_LSP_LOG then
    vim.lsp.set_log_level(vim.env.AURORA_E2E_LSP_LOG)
  end
  vim.fn.mkdir(ctx.tmp, "p")
  if not vim.env.AURORA_BIN or vim.fn.executable(vim.env.AURORA_BIN) ~= 1 then
    check("AURORA_BIN names the aurora binary", false, "an executable", vim.env.AURORA_BIN)
    return finish()
  end
  -- Notifications print without a newline in headless mode; keep the output readable.
  local levels = { [0] = "TRACE", "DEBUG", "INFO", "WARN", "ERROR" }
  ctx.notes = {}
  vim.notify = function(msg, level)
    table.insert(ctx.notes, msg)
    out(string.format("notify[%s]: %s", levels[level or 2] or tostring(level), msg))
  end
  local timer = vim.loop.new_timer()
  timer:start(WATCHDOG_MS, 0, vim.schedule_wrap(function()
    check("the whole test finishes within " .. WATCHDOG_MS / 1000 .. " s", false, "done", "still running")
    finish()
  end))
  local ok, err = xpcall(function()
    if not start_fake() then
      return
    end
    setup_workspace()
    if not test_attach_and_index() then
      return
    end
    for _, step in ipairs({ test_search, test_ask, test_ask_selection, test_cancel, test_code_action, test_explain_action, test_reindex, test_health }) do
      local step_ok, step_err = xpcall(step, debug.traceback)
      if not step_ok then
        check("no Lua error in the test step", false, "no error", step_err)
      end
    end
  end, debug.traceback)
  if not ok then
    check("no Lua error in the test", false, "no error", err)
  end
  timer:stop()
  finish()
end

return M
