-- Status: the last `aurora/didChangeStatus` per client (for statuslines) and `:AuroraStatus`,
-- a floating window rendering `aurora/status`.

local client_mod = require("aurora.client")

local M = {}

--- Stores a didChangeStatus notification and tells statuslines.
function M.on_status(client_id, params)
  client_mod.state.status[client_id] = params
  pcall(vim.api.nvim_exec_autocmds, "User", { pattern = "AuroraStatus", modeline = false })
  vim.cmd("redrawstatus")
end

--- The last status of the current buffer's client (or any), or nil.
function M.current()
  local client = client_mod.client_for(0)
  return client and client_mod.state.status[client.id] or nil
end

--- A short text for a statusline: "Aurora 120/884", "Aurora ✓", "Aurora: no LLM".
function M.statusline()
  local s = M.current()
  if not s then
    return client_mod.client_for(0) and "Aurora …" or ""
  end
  if s.state == "indexing" and s.indexing then
    return string.format("Aurora %d/%d", s.indexing.done, s.indexing.total)
  elseif s.state == "ready" then
    return "Aurora ✓"
  elseif s.state == "degraded" then
    if vim.tbl_contains(s.reasons or {}, "llmNotConfigured") then
      return "Aurora: no LLM"
    end
    return "Aurora: " .. (s.message or "degraded")
  elseif s.state == "error" then
    return "Aurora: error"
  end
  return "Aurora " .. (s.state or "")
end

--- Lines describing a StatusResult.
function M.render(st, last)
  local lines = {
    string.format("Aurora %s (protocol %s, %s)", st.serverVersion or "?", tostring(st.protocolVersion), st.positionEncoding or "?"),
    string.format("State: %s — %s", st.state or "?", st.message or ""),
    "",
    "Folders:",
  }
  for _, f in ipairs(st.folders or {}) do
    local files = f.filesTotal and string.format("%d/%d files", f.filesIndexed or 0, f.filesTotal)
      or string.format("%d files", f.filesIndexed or 0)
    table.insert(lines, string.format("  %s  [%s]  %s, %d chunks, watcher %s", vim.uri_to_fname(f.uri), f.state, files, f.chunks or 0, f.watcher or "?"))
    table.insert(lines, "    store: " .. (f.storePath or "?"))
    local skipped = {}
    for reason, n in pairs(f.skipped or {}) do
      table.insert(skipped, reason .. " " .. n)
    end
    if #skipped > 0 then
      table.sort(skipped)
      table.insert(lines, "    skipped: " .. table.concat(skipped, ", "))
    end
    if f.error then
      table.insert(lines, "    error: " .. f.error)
    end
  end
  local llm = st.llm or {}
  table.insert(lines, "")
  table.insert(lines, string.format("LLM: %s%s — %s%s", llm.provider or "?", llm.model and (" " .. llm.model) or "", llm.state or "?", llm.message and (": " .. llm.message) or ""))
  if st.budget then
    local b = st.budget
    table.insert(lines, string.format("Budget: $%.2f spent of $%.2f this month (%s)", b.spentUsd or 0, b.monthlyUsd or 0, b.state or "?"))
  end
  local problems = st.config and st.config.problems or {}
  if #problems == 0 then
    table.insert(lines, "Configuration: no problems")
  else
    table.insert(lines, "Configuration problems:")
    for _, p in ipairs(problems) do
      table.insert(lines, string.format("  %s: %s: %s", p.source, p.keyPath, p.message))
    end
  end
  table.insert(lines, string.format("Requests: %d active, %d queued", st.activeRequests or 0, st.queuedRequests or 0))
  if last then
    table.insert(lines, "Last status notification: " .. (last.message or last.state or "?"))
  end
  return lines
end

--- Requests `aurora/status`; `on_done(err, result)`.
function M.fetch(client, on_done)
  local ok, id
  ok, id = client_mod.request(client, "aurora/status", vim.empty_dict(), function(err, result)
    client_mod.done(client.id, id)
    on_done(err, result)
  end, 0)
  if not ok then
    on_done({ message = "the Aurora server is not running" }, nil)
  end
end

--- `:AuroraStatus`.
function M.show()
  local client = client_mod.client_for(0)
  if not client then
    vim.notify("aurora: no Aurora server is running; open a Python file of your project first", vim.log.levels.ERROR)
    return
  end
  M.fetch(client, function(err, result)
    if err then
      vim.notify("aurora: status failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    local lines = M.render(result, client_mod.state.status[client.id])
    local buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
    vim.bo[buf].modifiable = false
    vim.bo[buf].bufhidden = "wipe"
    local width = 20
    for _, l in ipairs(lines) do
      width = math.max(width, vim.fn.strdisplaywidth(l))
    end
    width = math.min(width + 2, vim.o.columns - 4)
    local height = math.min(#lines, vim.o.lines - 4)
    local win = vim.api.nvim_open_win(buf, true, {
      relative = "editor",
      width = width,
      height = height,
      row = math.floor((vim.o.lines - height) / 2),
      col = math.floor((vim.o.columns - width) / 2),
      style = "minimal",
      border = "rounded",
    })
    vim.keymap.set("n", "q", function()
      pcall(vim.api.nvim_win_close, win, true)
    end, { buffer = buf, silent = true })
    M.last_window = { win = win, buf = buf }
  end)
end

return M
