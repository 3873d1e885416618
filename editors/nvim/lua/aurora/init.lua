-- Aurora for Neovim: require("aurora").setup{} starts `aurora lsp` for your project and adds
-- :AuroraAsk, :AuroraAskSelection, :AuroraSearch, :AuroraStatus, :AuroraReindex and :AuroraCancel.
-- Works on Neovim 0.7.2 and later; see editors/nvim/README section in the repository README.

local client_mod = require("aurora.client")

local M = {}

local function is_ours(token)
  return type(token) == "string" and token:match("^aurora%-[pw]%-%d+$") ~= nil
end

--- `$/progress`: our partial-result and work-done tokens go to the answer view or the edit run;
--- others are passed to Neovim's own handler (0.7's would misfile partial values).
local function progress_handler(err, result, ctx, config)
  local entry = result and client_mod.state.tokens[result.token]
  if entry then
    if entry.kind == "edit" then
      entry.on_progress(result.value)
    else
      require("aurora.ask").on_progress(entry, result.value)
    end
    return
  end
  if result and is_ours(result.token) then
    return -- a late value for a request that already finished
  end
  if result and type(result.value) == "table" and ctx and ctx.client_id then
    local running = client_mod.state.server_progress[ctx.client_id] or {}
    client_mod.state.server_progress[ctx.client_id] = running
    if result.value.kind == "begin" then
      running[result.token] = { title = result.value.title, cancellable = result.value.cancellable }
    elseif result.value.kind == "end" then
      running[result.token] = nil
    end
  end
  return vim.lsp.handlers["$/progress"](err, result, ctx, config)
end

local function status_handler(_, params, ctx)
  require("aurora.status").on_status(ctx.client_id, params)
end

M.handlers = {
  ["$/progress"] = progress_handler,
  ["aurora/didChangeStatus"] = status_handler,
}

--- Cancels every Aurora request of this session and every cancellable server-created progress.
function M.cancel_all()
  local n = 0
  for key, p in pairs(client_mod.state.pending) do
    local client = vim.lsp.get_client_by_id(p.client_id)
    if client then
      client_mod.cancel(client, p.request_id)
      n = n + 1
    end
    client_mod.state.pending[key] = nil
  end
  for client_id, running in pairs(client_mod.state.server_progress) do
    local client = vim.lsp.get_client_by_id(client_id)
    for token, info in pairs(running) do
      if client and info.cancellable then
        client_mod.notify(client, "window/workDoneProgress/cancel", { token = token })
        n = n + 1
      end
    end
  end
  for _, answer in ipairs(require("aurora.ask").answers) do
    if not answer.done then
      answer.cancelling = true
    end
  end
  vim.notify(string.format("aurora: cancelled %d request(s)", n), vim.log.levels.INFO)
end

--- `:AuroraReindex[!]`.
function M.reindex(force)
  local client = client_mod.client_for(0)
  if not client then
    vim.notify("aurora: no Aurora server is running", vim.log.levels.ERROR)
    return
  end
  local ok, id
  ok, id = client_mod.request(client, "workspace/executeCommand", {
    command = "aurora.reindex",
    arguments = { { force = force or false } },
  }, function(err, result)
    client_mod.done(client.id, id)
    if err then
      vim.notify("aurora: reindex failed: " .. (err.message or ""), vim.log.levels.ERROR)
    else
      vim.notify(string.format("aurora: reindexed %d files (%d unchanged, %d removed), %d chunks",
        result.filesIndexed or 0, result.filesUnchanged or 0, result.filesRemoved or 0, result.chunks or 0))
    end
  end, 0)
  return ok
end

local function input_then(prompt, given, fn)
  if given and vim.trim(given) ~= "" then
    return fn(given)
  end
  vim.ui.input({ prompt = prompt }, function(q)
    if q ~= nil then
      fn(q)
    end
  end)
end

local function create_commands()
  local cmd = vim.api.nvim_create_user_command
  cmd("AuroraAsk", function(a)
    input_then("Ask Aurora: ", a.args, function(q)
      if vim.trim(q) ~= "" then
        require("aurora.ask").ask_here(q)
      end
    end)
  end, { nargs = "*", desc = "Ask Aurora about the workspace" })
  cmd("AuroraAskSelection", function(a)
    local line1, line2 = a.line1, a.line2
    local function go(q)
      require("aurora.ask").ask_selection(q, line1, line2)
    end
    if a.args ~= "" then
      go(a.args)
    else
      vim.ui.input({ prompt = "Ask about the selection (empty = explain): " }, function(q)
        if q ~= nil then
          go(q)
        end
      end)
    end
  end, { nargs = "*", range = true, desc = "Ask Aurora about the selected code" })
  cmd("AuroraSearch", function(a)
    require("aurora.search").search(a.args)
  end, { nargs = "+", desc = "Search the workspace with Aurora into the quickfix list" })
  cmd("AuroraStatus", function()
    require("aurora.status").show()
  end, { desc = "Show Aurora's status" })
  cmd("AuroraReindex", function(a)
    M.reindex(a.bang)
  end, { bang = true, desc = "Reindex the workspace (! = everything)" })
  cmd("AuroraCancel", function()
    M.cancel_all()
  end, { desc = "Cancel every running Aurora request" })
end

local function register_commands()
  local ask = require("aurora.ask")
  local edits = require("aurora.edits")
  vim.lsp.commands["aurora.explain"] = ask.explain_command
  vim.lsp.commands["aurora.ask"] = ask.ask_command
  vim.lsp.commands["aurora.refactor"] = edits.command
  vim.lsp.commands["aurora.document"] = edits.command
  vim.lsp.commands["aurora.tests"] = edits.command
end

--- Options (all optional): cmd, cmd_env, filetypes ({"python"}; "*" = every file buffer),
--- root_markers, settings (the `aurora` settings tree), answer = {view = "float"|"split", width,
--- height}, on_attach.
function M.setup(opts)
  opts = opts or {}
  client_mod.state.opts = opts
  local exe, cmd = client_mod.binary(opts)
  if not exe and not client_mod.state.warned_missing then
    client_mod.state.warned_missing = true
    vim.notify(
      string.format("aurora: the `%s` binary was not found on PATH; set `cmd` in require('aurora').setup{} or install it.", cmd[1]),
      vim.log.levels.ERROR
    )
  end
  create_commands()
  register_commands()
  client_mod.start(opts, M.handlers)
end

--- For statuslines: `%{v:lua.require'aurora'.statusline()}`.
function M.statusline()
  return require("aurora.status").statusline()
end

--- The last aurora/didChangeStatus of the current buffer's server, or nil.
function M.status()
  return require("aurora.status").current()
end

return M
