-- Minimal init for the headless tests: this plugin and the tests folder on the runtimepath,
-- nothing from the user's configuration (the runner points XDG_* at a temp dir), no swap or shada.
local here = debug.getinfo(1, "S").source:sub(2)
local tests = vim.fn.fnamemodify(here, ":p:h")
local plugin = vim.fn.fnamemodify(tests, ":h")

vim.opt.runtimepath:prepend(plugin)
vim.opt.runtimepath:append(tests)
vim.opt.swapfile = false
vim.opt.shadafile = "NONE"
vim.opt.more = false
vim.cmd("filetype on")
