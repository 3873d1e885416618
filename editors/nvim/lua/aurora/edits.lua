-- The editing code actions (aurora.refactor, aurora.document, aurora.tests): run through
-- `workspace/executeCommand` with our own work-done token, so progress, cancel and errors are
-- shown; the edit itself comes back as `workspace/applyEdit`, applied by Neovim's own handler.

local client_mod = require("aurora.client")

local M = {}

--- Every edit command run this session, oldest first (tests read the last one).
M.runs = {}

local TITLES = {
  ["aurora.refactor"] = "Refactor",
  ["aurora.document"] = "Add docstring",
  ["aurora.tests"] = "Write tests",
}

function M.last()
  return M.runs[#M.runs]
end

local function run(command, args, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id) or client_mod.client_for(ctx.bufnr)
  if not client then
    vim.notify("aurora: the Aurora server is not running", vim.log.levels.ERROR)
    return
  end
  local work_token = client_mod.new_tokens()
  local entry = { command = command, args = args, done = false, client_id = client.id, progress = nil }
  table.insert(M.runs, entry)
  client_mod.state.tokens[work_token] = {
    kind = "edit",
    on_progress = function(value)
      if type(value) == "table" and value.kind ~= "end" then
        entry.progress = value.message or value.title
        vim.api.nvim_echo({ { "Aurora: " .. (entry.progress or TITLES[command] or "") } }, false, {})
      end
    end,
  }
  local params = { command = command, arguments = { args }, workDoneToken = work_token }
  local ok, id
  ok, id = client_mod.request(client, "workspace/executeCommand", params, function(err, result)
    client_mod.done(client.id, id)
    client_mod.state.tokens[work_token] = nil
    entry.done, entry.err, entry.result = true, err, result
    if err then
      local level = err.code == -32800 and vim.log.levels.INFO or vim.log.levels.ERROR
      vim.notify("aurora: " .. (err.message or "the action failed"), level)
    elseif type(result) == "table" and result.applied == false then
      vim.notify("aurora: nothing was applied: " .. (result.failureReason or "the edit was declined"), vim.log.levels.WARN)
    elseif type(result) == "table" and result.label then
      vim.notify(result.label, vim.log.levels.INFO)
    end
  end, ctx.bufnr)
  entry.request_id = id
  if not ok then
    entry.done, entry.err = true, { message = "the Aurora server is not running" }
  end
  return entry
end

--- `vim.lsp.commands[...]` for the three editing actions; refactor asks for an instruction first.
function M.command(command, ctx)
  local args = vim.deepcopy((command.arguments or {})[1] or {})
  if command.command == "aurora.refactor" then
    vim.ui.input({ prompt = "Aurora refactor instruction (empty = simplify): " }, function(input)
      if input == nil then
        return -- the prompt was dismissed
      end
      if vim.trim(input) ~= "" then
        args.instruction = input
      end
      run(command.command, args, ctx)
    end)
    return
  end
  return run(command.command, args, ctx)
end

return M
