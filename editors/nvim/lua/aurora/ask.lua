-- `aurora/ask` with streaming: the answer view (a scratch Markdown buffer in a float or split),
-- partial results appended as they arrive, phase progress in its second line, the final layout
-- with Sources and a footer, and citations sent to the quickfix list.

local client_mod = require("aurora.client")

local M = {}

local EXPLAIN = "Explain what this code does and how it is used in the workspace."
local REQUEST_CANCELLED = -32800

--- Every answer of this session, oldest first (tests read the last one).
M.answers = {}

function M.last()
  return M.answers[#M.answers]
end

local function split_lines(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    table.insert(lines, line)
  end
  return lines
end

--- "12.3 s" / "0.4 s".
local function seconds(ms)
  return string.format("%.1f s", ms / 1000)
end

--- The citation lines' text: `N. path:line-endline name` (1-based lines, relative paths).
function M.citation_label(i, citation, rel_path)
  local s, e = citation.range.start.line + 1, citation.range["end"].line + 1
  -- A range ending at column 0 of a line ends on the line before.
  if citation.range["end"].character == 0 and e > s then
    e = e - 1
  end
  local stale = citation.stale and " (changed since read)" or ""
  return string.format("%d. %s:%d-%d %s%s", i, rel_path, s, e, citation.name or "", stale)
end

--- Final layout: `# question`, blank, answer, `## Sources`, citations, footer, warnings.
function M.render(answer, result, relative)
  local lines = { "# " .. answer.question:gsub("\n", " "), "" }
  vim.list_extend(lines, split_lines((result.answer or ""):gsub("%s+$", "")))
  local citations = result.citations or {}
  answer.sources_line = nil
  if #citations > 0 then
    vim.list_extend(lines, { "", "## Sources", "" })
    answer.sources_line = #lines + 1
    for i, c in ipairs(citations) do
      table.insert(lines, M.citation_label(i, c, relative(vim.uri_to_fname(c.uri))))
    end
  end
  local usage = result.usage or {}
  local footer = {
    result.complexity or "?",
    string.format("confidence %.2f", tonumber(result.confidence) or 0),
    seconds(answer.elapsed_ms or 0),
    string.format("$%.4f", tonumber(usage.costUsd) or 0),
  }
  if result.partial then
    table.insert(footer, "partial index")
  end
  if result.cached then
    table.insert(footer, "cached")
  end
  vim.list_extend(lines, { "", table.concat(footer, " · ") })
  for _, w in ipairs(result.warnings or {}) do
    table.insert(lines, "> " .. (w.message or w.code or ""))
  end
  return lines
end

local function set_lines(answer, lines)
  local buf = answer.bufnr
  if not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  if answer.win and vim.api.nvim_win_is_valid(answer.win) and not answer.done then
    -- Follow the stream.
    pcall(vim.api.nvim_win_set_cursor, answer.win, { #lines, 0 })
  end
end

local function render_streaming(answer)
  local status = answer.cancelling and "_Cancelling…_" or ("_" .. (answer.progress or "Thinking…") .. "_")
  local lines = { "# " .. answer.question:gsub("\n", " "), status, "" }
  if answer.text ~= "" then
    vim.list_extend(lines, split_lines(answer.text))
  end
  set_lines(answer, lines)
end

local function open_window(buf, view)
  view = view or {}
  if view.view == "split" then
    vim.cmd("botright split")
    local win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(win, buf)
    return win
  end
  local columns, rows = vim.o.columns, vim.o.lines
  local width = math.max(20, math.floor(columns * (view.width or 0.6)))
  local height = math.max(5, math.floor(rows * (view.height or 0.7)))
  return vim.api.nvim_open_win(buf, true, {
    relative = "editor",
    width = width,
    height = height,
    row = math.floor((rows - height) / 2),
    col = math.floor((columns - width) / 2),
    style = "minimal",
    border = "rounded",
  })
end

--- Opens citation `i` of `answer` in a normal window.
function M.jump(answer, i)
  local c = answer.result and answer.result.citations and answer.result.citations[i]
  if not c then
    return
  end
  local path = vim.uri_to_fname(c.uri)
  local client = vim.lsp.get_client_by_id(answer.client_id)
  local target
  for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if win ~= answer.win and vim.api.nvim_win_get_config(win).relative == "" then
      target = win
      break
    end
  end
  if answer.win and vim.api.nvim_win_is_valid(answer.win) and vim.api.nvim_win_get_config(answer.win).relative ~= "" then
    vim.api.nvim_win_close(answer.win, true)
  end
  if target then
    vim.api.nvim_set_current_win(target)
  end
  vim.cmd("edit " .. vim.fn.fnameescape(path))
  local lnum, col = client_mod.to_vim_pos(path, c.range.start, client_mod.encoding(client))
  pcall(vim.api.nvim_win_set_cursor, 0, { lnum, col - 1 })
end

local function set_keys(answer)
  local buf = answer.bufnr
  local opts = { buffer = buf, silent = true, nowait = true }
  vim.keymap.set("n", "q", function()
    if answer.win and vim.api.nvim_win_is_valid(answer.win) then
      vim.api.nvim_win_close(answer.win, true)
    end
  end, opts)
  vim.keymap.set("n", "<C-c>", function()
    M.cancel(answer)
  end, opts)
  vim.keymap.set("n", "<CR>", function()
    local line = vim.api.nvim_get_current_line()
    local i = tonumber(line:match("^(%d+)%. "))
    if i and answer.sources_line and vim.fn.line(".") >= answer.sources_line then
      M.jump(answer, i)
    end
  end, opts)
end

local finish

--- Cancels the request behind `answer` (`$/cancelRequest`). The server stops the work and answers
--- RequestCancelled, but Neovim's RPC layer swallows that answer (it never reaches the callback), so
--- the view is finished here; a result that raced the cancellation is ignored.
function M.cancel(answer)
  if answer.done or not answer.request_id then
    return
  end
  local client = vim.lsp.get_client_by_id(answer.client_id)
  if client then
    answer.cancelling = true
    render_streaming(answer)
    client_mod.cancel(client, answer.request_id)
    finish(answer, { code = REQUEST_CANCELLED, message = "Cancelled." }, nil, client)
  end
end

local function citations_to_quickfix(answer, result, enc)
  local items = {}
  for _, c in ipairs(result.citations or {}) do
    local path = vim.uri_to_fname(c.uri)
    local lnum, col = client_mod.to_vim_pos(path, c.range.start, enc)
    local end_lnum, end_col = client_mod.to_vim_pos(path, c.range["end"], enc)
    table.insert(items, {
      filename = path,
      lnum = lnum,
      col = col,
      end_lnum = end_lnum,
      end_col = end_col,
      text = c.name or c.chunkId or "",
    })
  end
  if #items > 0 then
    vim.fn.setqflist({}, " ", { title = "Aurora citations", items = items })
  end
end

finish = function(answer, err, result, client)
  if answer.done then
    return -- already finished (cancelled while the result was on its way)
  end
  answer.done = true
  answer.elapsed_ms = (vim.loop.hrtime() - answer.started) / 1e6
  client_mod.state.tokens[answer.work_token] = nil
  client_mod.state.tokens[answer.partial_token] = nil
  client_mod.done(answer.client_id, answer.request_id)
  if err then
    answer.error = err
    local message
    if err.code == REQUEST_CANCELLED then
      answer.cancelled = true
      message = "Cancelled."
    else
      message = "Aurora could not answer: " .. (err.message or vim.inspect(err))
      vim.notify("aurora: " .. (err.message or "ask failed"), vim.log.levels.ERROR)
    end
    local lines = { "# " .. answer.question:gsub("\n", " "), "" }
    if answer.text ~= "" then
      vim.list_extend(lines, split_lines(answer.text))
      table.insert(lines, "")
    end
    table.insert(lines, "**" .. message .. "**")
    set_lines(answer, lines)
    return
  end
  answer.result = result
  local relative = function(path)
    return client_mod.relative(client, path)
  end
  set_lines(answer, M.render(answer, result, relative))
  citations_to_quickfix(answer, result, client_mod.encoding(client))
end

--- Progress for our tokens: partial results stream text, work-done values update the header.
function M.on_progress(entry, value)
  local answer = entry.answer
  if answer.done then
    return
  end
  if entry.kind == "partial" then
    if value.reset then
      answer.text = ""
      answer.resets = answer.resets + 1
    end
    if value.delta then
      answer.text = answer.text .. value.delta
      answer.deltas = answer.deltas + 1
    end
  elseif type(value) == "table" and value.kind then
    if value.kind == "end" then
      answer.progress = value.message or answer.progress
    else
      local msg = value.message or value.title or answer.progress
      if value.percentage then
        msg = string.format("%s (%d%%)", msg, value.percentage)
      end
      answer.progress = msg
    end
  end
  render_streaming(answer)
end

--- Asks a question. `opts`: question, bufnr (context document), range / position (LSP, in the
--- client's encoding), client, view ({view, width, height}), extra (more params).
function M.ask(opts)
  local client = opts.client
  if not client then
    vim.notify("aurora: no Aurora server is running; open a Python file of your project first", vim.log.levels.ERROR)
    return nil
  end
  local question = vim.trim(opts.question or "")
  if question == "" then
    question = EXPLAIN
  end
  local work_token, partial_token = client_mod.new_tokens()
  local params = vim.tbl_extend("force", opts.extra or {}, {
    question = question,
    workDoneToken = work_token,
    partialResultToken = partial_token,
  })
  if opts.uri then
    params.textDocument = { uri = opts.uri }
    params.range = opts.range
    params.position = opts.position
  end
  local n = #M.answers + 1
  local answer = {
    n = n,
    question = question,
    client_id = client.id,
    text = "",
    deltas = 0,
    resets = 0,
    done = false,
    started = vim.loop.hrtime(),
    work_token = work_token,
    partial_token = partial_token,
    params = params,
  }
  table.insert(M.answers, answer)
  local buf = vim.api.nvim_create_buf(false, true)
  answer.bufnr = buf
  pcall(vim.api.nvim_buf_set_name, buf, "aurora://answer/" .. n)
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = "markdown"
  local view = (client_mod.state.opts or {}).answer
  answer.win = open_window(buf, view)
  vim.wo[answer.win].wrap = true
  set_keys(answer)
  render_streaming(answer)
  client_mod.state.tokens[work_token] = { kind = "work", answer = answer }
  client_mod.state.tokens[partial_token] = { kind = "partial", answer = answer }
  local ok, id = client_mod.request(client, "aurora/ask", params, function(err, result)
    finish(answer, err, result, client)
  end, opts.bufnr)
  if not ok then
    finish(answer, { code = -1, message = "the Aurora server is not running" }, nil, client)
    return answer
  end
  answer.request_id = id
  return answer
end

--- The context of buffer `bufnr` for a request: its URI when it is a file buffer.
function M.buffer_uri(bufnr)
  if vim.bo[bufnr].buftype ~= "" or vim.api.nvim_buf_get_name(bufnr) == "" then
    return nil
  end
  return vim.uri_from_bufnr(bufnr)
end

--- Cursor position of the current window in the client's encoding.
function M.cursor_position(client)
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local line = vim.api.nvim_get_current_line()
  return { line = row - 1, character = client_mod.byte_to_char(line, col, client_mod.encoding(client)) }
end

--- `:AuroraAsk`: context = current buffer and cursor.
function M.ask_here(question, view)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = client_mod.client_for(bufnr)
  local uri = M.buffer_uri(bufnr)
  return M.ask({
    question = question,
    client = client,
    bufnr = bufnr,
    uri = uri,
    position = uri and client and M.cursor_position(client) or nil,
    view = view,
  })
end

--- The LSP range of lines `line1..line2` (1-based), charwise between the visual marks when the
--- last visual selection was charwise and covers exactly those lines.
function M.selection_range(client, bufnr, line1, line2)
  local enc = client_mod.encoding(client)
  local lines = vim.api.nvim_buf_get_lines(bufnr, line1 - 1, line2, false)
  local first, last = lines[1] or "", lines[#lines] or ""
  local s_pos, e_pos = vim.fn.getpos("'<"), vim.fn.getpos("'>")
  if vim.fn.visualmode() == "v" and s_pos[2] == line1 and e_pos[2] == line2 then
    local s_byte = s_pos[3] - 1
    -- '> marks the last selected character: the range ends after it.
    local e_byte = math.min(e_pos[3], #last)
    local b = last:byte(e_byte)
    if b and b >= 0xC0 then
      e_byte = e_byte + (b < 0xE0 and 1 or b < 0xF0 and 2 or 3)
    end
    return {
      start = { line = line1 - 1, character = client_mod.byte_to_char(first, s_byte, enc) },
      ["end"] = { line = line2 - 1, character = client_mod.byte_to_char(last, e_byte, enc) },
    }
  end
  return {
    start = { line = line1 - 1, character = 0 },
    ["end"] = { line = line2 - 1, character = client_mod.byte_to_char(last, #last, enc) },
  }
end

--- `:AuroraAskSelection`: the range's text goes into the context.
function M.ask_selection(question, line1, line2, view)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = client_mod.client_for(bufnr)
  local uri = M.buffer_uri(bufnr)
  if not uri then
    vim.notify("aurora: :AuroraAskSelection needs a file buffer", vim.log.levels.ERROR)
    return nil
  end
  return M.ask({
    question = question,
    client = client,
    bufnr = bufnr,
    uri = uri,
    range = client and M.selection_range(client, bufnr, line1, line2) or nil,
    view = view,
  })
end

--- `vim.lsp.commands["aurora.explain"]`: the Explain code action as a streaming ask.
function M.explain_command(command, ctx)
  local args = (command.arguments or {})[1] or {}
  local client = vim.lsp.get_client_by_id(ctx.client_id) or client_mod.client_for(ctx.bufnr)
  local doc = args.textDocument or {}
  return M.ask({
    question = args.question or EXPLAIN,
    client = client,
    bufnr = ctx.bufnr,
    uri = doc.uri,
    range = args.range,
  })
end

--- `vim.lsp.commands["aurora.ask"]`: AskParams as the one argument.
function M.ask_command(command, ctx)
  local args = vim.deepcopy((command.arguments or {})[1] or {})
  local client = vim.lsp.get_client_by_id(ctx.client_id) or client_mod.client_for(ctx.bufnr)
  local question = args.question
  local doc = args.textDocument or {}
  local uri, range, position = doc.uri, args.range, args.position
  args.question, args.textDocument, args.range, args.position = nil, nil, nil, nil
  args.workDoneToken, args.partialResultToken = nil, nil
  return M.ask({
    question = question,
    client = client,
    bufnr = ctx.bufnr,
    uri = uri,
    range = range,
    position = position,
    extra = args,
  })
end

return M
