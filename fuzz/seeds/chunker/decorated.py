@d
class A(B):
    """doc"""
    @property
    def x(self):
        return 1

    async def y(self): pass
