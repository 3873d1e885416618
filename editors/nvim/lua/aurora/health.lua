-- :checkhealth aurora — the Neovim version, the binary and its version, the server attached to the
-- current buffer and its state, the LLM provider, configuration problems and the store.

local client_mod = require("aurora.client")

local M = {}

local health = vim.health or require("health")
local start = health.start or health.report_start
local ok = health.ok or health.report_ok
local info = health.info or health.report_info
local warn = health.warn or health.report_warn
local error = health.error or health.report_error

function M.check()
  start("aurora: Neovim")
  local v = vim.version()
  local version = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.7") == 1 then
    ok("Neovim " .. version)
  else
    error("Neovim " .. version .. " is too old; Aurora needs 0.7 or later")
  end

  start("aurora: server binary")
  local exe, cmd = client_mod.binary(client_mod.state.opts)
  if not exe then
    error(string.format("`%s` was not found or is not executable", cmd[1]), {
      "Install it (cargo install --path . in the Aurora repository) or set `cmd` in require('aurora').setup{}",
    })
  else
    ok("found " .. exe)
    local out = vim.fn.system({ exe, "--version" })
    if vim.v.shell_error == 0 then
      ok("version: " .. vim.trim(out))
    else
      warn("`" .. exe .. " --version` failed: " .. vim.trim(out))
    end
  end
  if not client_mod.state.opts then
    warn("require('aurora').setup{} has not been called")
  end

  start("aurora: server")
  local client, attached = client_mod.client_for(0)
  if not client then
    warn("no Aurora server is running", { "Open a Python file inside your project" })
    return
  end
  if attached then
    ok(string.format("client %d is attached to this buffer (root %s)", client.id, client.config.root_dir or "?"))
  else
    info(string.format("client %d is running but not attached to this buffer", client.id))
  end
  local last = client_mod.state.status[client.id]
  if last then
    info(string.format("last status: %s — %s", last.state, last.message or ""))
  end
  local response = client_mod.request_sync(client, "aurora/status", vim.empty_dict(), 2000, 0)
  local st = response and response.result
  if not st then
    error("aurora/status did not answer within 2 s" .. (response and response.err and (": " .. (response.err.message or "")) or ""))
    return
  end
  ok(string.format("server %s, protocol %s, state %s: %s", st.serverVersion or "?", tostring(st.protocolVersion), st.state, st.message or ""))
  if st.protocolVersion ~= client_mod.PROTOCOL_VERSION then
    error(string.format("the server speaks protocol %s, this plugin %d", tostring(st.protocolVersion), client_mod.PROTOCOL_VERSION))
  end
  for _, f in ipairs(st.folders or {}) do
    local line = string.format("folder %s: %s, %d files, %d chunks, store %s", vim.uri_to_fname(f.uri), f.state, f.filesIndexed or 0, f.chunks or 0, f.storePath or "?")
    if f.state == "error" then
      error(line .. (f.error and (": " .. f.error) or ""))
    elseif vim.fn.filereadable(f.storePath or "") == 1 then
      ok(line)
    else
      warn(line .. " (the store file does not exist yet)")
    end
  end

  start("aurora: LLM provider")
  local llm = st.llm or {}
  local line = string.format("provider: %s%s, state: %s", llm.provider or "?", llm.model and (", model: " .. llm.model) or "", llm.state or "?")
  if llm.state == "configured" or llm.state == "ready" then
    ok(line)
  elseif llm.state == "notConfigured" then
    warn(line, { "Set settings = {aurora = {llm = {provider = ..., model = ...}}} in setup{}, or [llm] in ~/.config/aurora/config.toml" })
  else
    error(line .. (llm.message and (": " .. llm.message) or ""))
  end
  local problems = st.config and st.config.problems or {}
  if #problems == 0 then
    ok("no configuration problems")
  else
    for _, p in ipairs(problems) do
      warn(string.format("%s: %s: %s", p.source, p.keyPath, p.message))
    end
  end
end

return M
